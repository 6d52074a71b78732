"""Entry point `compare`: the four families on one dataset and split, one table.

mlflow run . -e compare -P n_trials=2 --env-manager local
"""

import sys

from posterml.compare import run_comparison
from posterml.data.dataset import DatasetError
from posterml.features.backbones import BackboneUnavailableError
from posterml.io import run_interruptible
from posterml.runner import parse_config


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; an unusable dataset or backbone is one line and exit status 2."""
    try:
        run_comparison(parse_config("compare", argv))
    except (BackboneUnavailableError, DatasetError) as exc:
        print(f"posterml compare: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    # Ctrl-C/SIGTERM unwind the runs (MLflow runs end, temp files go) and exit 130/143.
    raise SystemExit(run_interruptible("compare", main))
