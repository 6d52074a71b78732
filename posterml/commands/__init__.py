"""The shell commands of ``posterml``: one module each, parsing flags and printing results.

Each module has ``add_parser(subparsers)``; ``posterml.cli`` lists them. The logic they call
lives in the layers below (data, evaluation, modeling, registry, batch, serving).
"""
