"""Entry point `resnet_svm`: Pretrained CNN features + one-vs-rest RBF SVMs (balanced or not).

mlflow run . -e resnet_svm -P data=synthetic --env-manager local
"""

from posterml.runner import main

if __name__ == "__main__":
    raise SystemExit(main("resnet_svm"))
