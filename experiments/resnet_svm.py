"""Entry point `resnet_svm`: Pretrained CNN features + one-vs-rest RBF SVMs (balanced or not).

mlflow run . -e resnet_svm -P data=synthetic --env-manager local
"""

from functools import partial

from posterml.io import run_interruptible
from posterml.modeling.cli import main

if __name__ == "__main__":
    # Ctrl-C/SIGTERM unwind the run (MLflow runs end, temp files go) and exit 130/143.
    raise SystemExit(run_interruptible("resnet_svm", partial(main, "resnet_svm")))
