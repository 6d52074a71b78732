"""Entry point `register`: register the best balanced run's model as @champion.

mlflow run . -e register --experiment-name posterml --env-manager local
"""

import argparse

from posterml.cli_args import resolve_argv
from posterml.serving.register_command import DESCRIPTION, add_register_arguments, run_register

if __name__ == "__main__":
    parser = add_register_arguments(argparse.ArgumentParser(description=DESCRIPTION))
    raise SystemExit(run_register(parser.parse_args(resolve_argv())))
