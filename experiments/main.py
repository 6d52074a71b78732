"""Entry point `main`: the recipe we ship (``posterml.experiment.config.RECOMMENDED``) on your
posters.

mlflow run . -P data=FOLDER --env-manager local
"""

from functools import partial

from posterml.experiment.cli import main
from posterml.experiment.config import RECOMMENDED
from posterml.io import run_interruptible

if __name__ == "__main__":
    run = partial(main, RECOMMENDED["family"], entry_point="main")
    raise SystemExit(run_interruptible("main", run))
