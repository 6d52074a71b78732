"""MLproject entry point ``colors``: dominant poster colours by genre and decade.

mlflow run . -e colors -P data=../shared/posters --env-manager local
python -m experiments.colors --data ../shared/posters --n-colors 5 --drop-grays true
"""

from posterml.colors.command import main
from posterml.io import run_interruptible

if __name__ == "__main__":
    # Ctrl-C/SIGTERM unwind the run (the MLflow run ends, temp files go) and exit 130/143.
    raise SystemExit(run_interruptible("colors", main))
