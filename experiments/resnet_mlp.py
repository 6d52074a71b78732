"""Entry point `resnet_mlp`: Pretrained CNN features + the study's MLP.

mlflow run . -e resnet_mlp -P data=synthetic --env-manager local
"""

from posterml.runner import parse_config, run_experiment


def main(argv: list[str] | None = None) -> str:
    return run_experiment(parse_config("resnet_mlp", argv))


if __name__ == "__main__":
    main()
