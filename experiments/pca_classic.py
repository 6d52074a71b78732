"""Entry point `pca_classic`: PCA on grayscale pixels + KNN / logistic regression / random forest.

mlflow run . -e pca_classic -P data=synthetic --env-manager local
"""

from posterml.runner import parse_config, run_experiment


def main(argv: list[str] | None = None) -> str:
    return run_experiment(parse_config("pca_classic", argv))


if __name__ == "__main__":
    main()
