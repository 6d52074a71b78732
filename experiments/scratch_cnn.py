"""Entry point `scratch_cnn`: A CNN trained from scratch on resized posters.

mlflow run . -e scratch_cnn -P data=synthetic --env-manager local
"""

from functools import partial

from posterml.io import run_interruptible
from posterml.modeling.cli import main

if __name__ == "__main__":
    # Ctrl-C/SIGTERM unwind the run (MLflow runs end, temp files go) and exit 130/143.
    raise SystemExit(run_interruptible("scratch_cnn", partial(main, "scratch_cnn")))
