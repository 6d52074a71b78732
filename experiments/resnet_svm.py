"""Entry point `resnet_svm`: Pretrained CNN features + one-vs-rest RBF SVMs (balanced or not).

mlflow run . -e resnet_svm -P data=synthetic --env-manager local
"""

from posterml.runner import parse_config, run_experiment


def main(argv: list[str] | None = None) -> str:
    return run_experiment(parse_config("resnet_svm", argv))


if __name__ == "__main__":
    main()
