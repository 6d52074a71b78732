"""The shell commands of ``posterml``: one module each, parsing flags and printing results.

The logic they call lives in the layers below (data, evaluation, serving, registry).
"""
