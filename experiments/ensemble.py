"""Entry point `ensemble`: the SVM and the MLP on pretrained CNN features, logits averaged.

mlflow run . -e ensemble -P data=synthetic -P backbone=efficientnet_lite0 --env-manager local
"""

from functools import partial

from posterml.io import run_interruptible
from posterml.modeling.cli import main

if __name__ == "__main__":
    # Ctrl-C/SIGTERM unwind the run (MLflow runs end, temp files go) and exit 130/143.
    raise SystemExit(run_interruptible("ensemble", partial(main, "ensemble")))
