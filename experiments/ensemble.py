"""Entry point `ensemble`: the SVM and the MLP on pretrained CNN features, logits averaged.

mlflow run . -e ensemble -P data=synthetic -P backbone=efficientnet_lite0 --env-manager local
"""

from posterml.runner import main

if __name__ == "__main__":
    raise SystemExit(main("ensemble"))
