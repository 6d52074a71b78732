"""Entry point `register`: register the best balanced run's model as @champion.

mlflow run . -e register --experiment-name posterml --env-manager local
"""

import sys

from posterml.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["register", *sys.argv[1:]]))
