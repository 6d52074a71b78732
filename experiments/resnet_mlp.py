"""Entry point `resnet_mlp`: Pretrained CNN features + the study's MLP.

mlflow run . -e resnet_mlp -P data=synthetic --env-manager local
"""

from functools import partial

from posterml.io import run_interruptible
from posterml.modeling.cli import main

if __name__ == "__main__":
    # Ctrl-C/SIGTERM unwind the run (MLflow runs end, temp files go) and exit 130/143.
    raise SystemExit(run_interruptible("resnet_mlp", partial(main, "resnet_mlp")))
