"""Entry point `register`: register the best balanced run's model as @champion.

mlflow run . -e register --experiment-name X --env-manager local
"""

import argparse
import os

import mlflow

from posterml.serving.registry import DEFAULT_MODEL_NAME, register_best
from posterml.tracking import configure_tracking


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--experiment",
        default="current",
        help="experiment name or id to search (default: the one this run is in)",
    )
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--metric", default="val_f1_weighted")
    parser.add_argument("--balanced-only", default="true", choices=["true", "false"])
    args = parser.parse_args(argv)
    configure_tracking()
    result = register_best(
        args.experiment, args.model_name, args.metric, args.balanced_only == "true"
    )
    print(result.message)
    if os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run`: say on the run what happened
        with mlflow.start_run():
            mlflow.set_tags(
                {
                    "posterml.role": "register",
                    "registered_version": result.version or "",
                    "registered_from_run": result.run_id or "",
                    "registry_changed": str(result.changed).lower(),
                }
            )
            mlflow.log_text(result.message, "registration.txt")
    return 0 if result.version else 1


if __name__ == "__main__":
    raise SystemExit(main())
