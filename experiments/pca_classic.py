"""Entry point `pca_classic`: PCA on grayscale pixels + KNN / logistic regression / random forest.

mlflow run . -e pca_classic -P data=synthetic --env-manager local
"""

from posterml.runner import main

if __name__ == "__main__":
    raise SystemExit(main("pca_classic"))
