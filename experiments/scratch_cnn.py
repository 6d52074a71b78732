"""Entry point `scratch_cnn`: A CNN trained from scratch on resized posters.

mlflow run . -e scratch_cnn -P data=synthetic --env-manager local
"""

from posterml.runner import parse_config, run_experiment


def main(argv: list[str] | None = None) -> str:
    return run_experiment(parse_config("scratch_cnn", argv))


if __name__ == "__main__":
    main()
