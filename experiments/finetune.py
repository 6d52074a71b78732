"""Entry point `finetune`: the pretrained CNN's top block fine-tuned on posters.

mlflow run . -e finetune -P data=synthetic --env-manager local
"""

from functools import partial

from posterml.io import run_interruptible
from posterml.modeling.cli import main

if __name__ == "__main__":
    # Ctrl-C/SIGTERM unwind the run (MLflow runs end, temp files go) and exit 130/143.
    raise SystemExit(run_interruptible("finetune", partial(main, "finetune")))
