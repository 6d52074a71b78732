"""Entry point `batch_score`: score a folder or a Parquet/CSV of image paths on Spark.

mlflow run . -e batch_score -P source=posters/ -P out=predictions.parquet --env-manager local
spark-submit experiments/batch_score.py posters/ --out predictions.parquet
"""

import sys

from posterml.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["batch-score", *sys.argv[1:]]))
