"""``posterml batch-score SOURCE... --out predictions.parquet``: the model on Spark.

What is read and written, and how bad images are kept from failing the job:
:mod:`posterml.batch.spark`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from posterml.batch.spark import ENV_MANAGERS, batch_score, spark_session
from posterml.batch.spark_io import TABLE_FORMATS
from posterml.cli_args import parse_positive
from posterml.names import CHAMPION_URI
from posterml.serving.pyfunc import SCORE_CHUNK_ROWS


def _handle_batch_score(args: argparse.Namespace) -> int:
    """CLI handler: 0 on success (even with unusable images), 1 if none could be scored."""
    from pyspark.sql import SparkSession

    from posterml.tracking import configure_tracking

    configure_tracking()
    spark = None
    ours = SparkSession.getActiveSession() is None  # a session we did not start stays up
    try:
        spark = spark_session(args.master or None)
        report = batch_score(
            spark,
            args.sources,
            args.out,
            args.model,
            fmt=args.format,
            path_column=args.path_column,
            year_column=args.year_column or None,
            batch_rows=args.batch_size,
            partitions=args.partitions,
            env_manager=args.env_manager,
        )
    except Exception as exc:  # no model, no Java, a missing column: say why, no trace
        print(f"posterml batch-score: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        if spark is not None and ours:
            spark.stop()
    print(
        f"wrote {report.n_rows} row(s) to {report.out} ({report.format}): {report.n_scored} "
        f"scored, {report.n_errors} unusable (reason in the error column); "
        f"{report.images_per_second:.1f} images/s"
    )
    if report.n_rows and not report.n_scored:
        print("posterml batch-score: no usable image among the inputs", file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``posterml batch-score`` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "batch-score",
        help="score folders or tables of image paths on Spark into Parquet/CSV",
        description="Score posters with a registered model on Spark (mlflow spark_udf). "
        "SOURCE: image files, folders, or .parquet/.csv tables with a column of image paths. "
        "Unusable images get a row with empty genres and the reason in 'error'. The output "
        "folder appears only when the job succeeded.",
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE")
    parser.add_argument("--out", required=True, help="output folder (*.csv: CSV, else Parquet)")
    parser.add_argument("--model", default=CHAMPION_URI, help=f"default: {CHAMPION_URI}")
    parser.add_argument("--format", choices=TABLE_FORMATS, help="default: from --out")
    parser.add_argument("--path-column", default="path", help="tables: the image path column")
    parser.add_argument(
        "--year-column", default="", help="tables: a release-year column for the model"
    )
    parser.add_argument(
        "--master", default="", help="Spark master (default: spark-submit's, else local[*])"
    )
    parser.add_argument(
        "--batch-size",
        type=parse_positive,
        default=SCORE_CHUNK_ROWS,
        help=f"images per model call (default: {SCORE_CHUNK_ROWS})",
    )
    parser.add_argument(
        "--partitions", type=parse_positive, help="Spark tasks (default: one per core)"
    )
    parser.add_argument(
        "--env-manager",
        choices=ENV_MANAGERS,
        default="local",
        help="spark_udf's: local (executors have posterml installed) or rebuild the "
        "model's environment",
    )
    parser.set_defaults(handler=_handle_batch_score)
    return parser
