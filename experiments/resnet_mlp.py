"""Entry point `resnet_mlp`: Pretrained CNN features + the study's MLP.

mlflow run . -e resnet_mlp -P data=synthetic --env-manager local
"""

from posterml.runner import main

if __name__ == "__main__":
    raise SystemExit(main("resnet_mlp"))
