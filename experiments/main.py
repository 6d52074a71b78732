"""Entry point `main`: the recipe we ship (``posterml.modeling.settings.RECOMMENDED``) on your
posters.

mlflow run . -P data=FOLDER --env-manager local
"""

from functools import partial

from posterml.io import run_interruptible
from posterml.modeling.cli import main
from posterml.modeling.settings import RECOMMENDED

if __name__ == "__main__":
    run = partial(main, RECOMMENDED["family"], entry_point="main")
    raise SystemExit(run_interruptible("main", run))
