"""Entry point `register`: register the best balanced run's model as @champion.

mlflow run . -e register --experiment-name posterml --env-manager local
"""

import argparse

from posterml.cli_args import resolve_argv
from posterml.commands.register import DESCRIPTION, add_register_arguments, run_register
from posterml.team.refusals import refused_in_one_line

if __name__ == "__main__":
    parser = add_register_arguments(argparse.ArgumentParser(description=DESCRIPTION))
    args = parser.parse_args(resolve_argv())
    raise SystemExit(
        refused_in_one_line(
            "posterml register", lambda: run_register(args), args.model_name, args.experiment
        )
    )
