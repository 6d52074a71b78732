"""Entry point `compare`: the four families on one dataset and split, one table.

mlflow run . -e compare -P n_trials=2 --env-manager local
"""

from posterml.io import run_interruptible
from posterml.modeling.compare import main

if __name__ == "__main__":
    # Ctrl-C/SIGTERM unwind the runs (MLflow runs end, temp files go) and exit 130/143.
    raise SystemExit(run_interruptible("compare", main))
