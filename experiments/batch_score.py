"""Entry point `batch_score`: score a folder or a Parquet/CSV of image paths on Spark.

mlflow run . -e batch_score -P source=posters/ -P out=predictions.parquet --env-manager local
"""

from posterml.cli import main
from posterml.cli_args import resolve_argv

if __name__ == "__main__":
    raise SystemExit(main(["batch-score", *resolve_argv(positionals=("source",))]))
