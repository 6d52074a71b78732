"""Spark batch scoring (``posterml batch-score``): the model as a UDF over files or tables.

The registered model is applied through ``mlflow.pyfunc.spark_udf``, so the same job runs in
local mode here (``--master local[2]``) and unchanged under ``spark-submit`` on a cluster
(the master then comes from ``spark-submit``). A SOURCE is an image file, a folder or a
``.parquet``/``.csv`` table with a column of image paths (``spark_io``). Executors read the
images themselves, so the paths must be on a filesystem every executor mounts (local disk in
local mode, NFS or a mounted bucket on a cluster); with ``env_manager="local"`` (the default)
executors need posterml installed, as the driver has it.

A bad image never fails the batch. The pyfunc model rejects a whole request when one row is
unusable (the server's HTTP 400), and ``spark_udf`` hands it whole Arrow batches, so each
image is first read and checked on the executors by the model's own checks
(``spark_io.read_for_model``). A row that fails gets empty ``genres`` and ``maybe``, null
scores and its reason in ``error``; the model sees a generated stand-in poster in its place
(its answer is discarded), so the job stays one pass over the files with no union and no
cached image bytes. The price is decoding each image twice (JPEG at reduced scale); the
README gives the measured cost.

The output is a Spark folder of Parquet (or CSV, genre lists joined by ``|``) part files
with ``file``, ``genres`` (asserted), ``maybe`` (worth a look; empty from a model logged
before the tiers), one ``score_<genre>`` column per genre and ``error`` (and ``year`` when a
year column was given), committed whole or not at all (``spark_io.write_atomically``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from posterml.batch.spark_io import (
    count_rows,
    output_format,
    read_sources,
    reader,
    write_atomically,
)
from posterml.names import CHAMPION_URI, TEXT_COLUMN
from posterml.serving.limits import (
    ENV_MAX_IMAGE_PIXELS,
    ENV_MAX_REQUEST_PIXELS,
    ENV_MAX_ROWS,
    ENV_TIMEOUT,
    ServingLimits,
)
from posterml.serving.pyfunc import SCORE_CHUNK_ROWS, SCORE_COLUMNS, example_poster

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

ENV_MANAGERS = ("local", "virtualenv", "uv", "conda")
# Seconds one Arrow batch may take inside the model: its deadline is the scoring server's
# request timeout (60 s), too tight for a slow executor; a batch job has no client waiting.
BATCH_TIMEOUT_S = 3600


@dataclass
class BatchReport:
    """What a batch-scoring job wrote: where, how many rows, how many unusable, how fast."""

    out: str
    format: str
    n_rows: int
    n_errors: int
    seconds: float

    @property
    def n_scored(self) -> int:
        return self.n_rows - self.n_errors

    @property
    def images_per_second(self) -> float:
        return self.n_scored / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------- spark
def spark_session(master: str | None = None, app_name: str = "posterml-batch-score"):
    """The active SparkSession, or a new one on ``master`` (None: what ``spark-submit`` set,
    else pyspark's default, ``local[*]``).

    When this process starts Spark itself in local mode, Python workers run this interpreter
    (``PYSPARK_PYTHON``, unless set): pyspark would start ``python3`` from PATH, which may
    lack posterml.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    launched_here = "PYSPARK_GATEWAY_PORT" not in os.environ  # spark-submit sets it
    if launched_here and (master is None or master.startswith("local")):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


# --------------------------------------------------------------------------- scoring
def model_image_size(model_dir: Path) -> tuple[int, int]:
    """The (height, width) a downloaded posterml model decodes towards, without loading it."""
    from posterml.features.base import saved_image_size

    pipeline_dir = next(Path(model_dir).rglob("meta.json")).parent  # as load_pipeline finds it
    return saved_image_size(pipeline_dir / "featurizer")


def model_answers(model_dir: Path, column: str) -> bool:
    """Does the downloaded model answer ``column``? Read from its signature: models logged
    before the tiers have no ``maybe``, models that do not read the words no ``text``."""
    from mlflow.models import Model

    signature = Model.load(str(model_dir)).signature
    return signature is not None and column in signature.outputs.input_names()


def model_has_maybe(model_dir: Path) -> bool:
    """Does the downloaded model answer a ``maybe`` column? (Models logged before the tiers
    run their own older posterml, which does not.)"""
    return model_answers(model_dir, "maybe")


def score_frame(
    inputs: DataFrame,
    model_path: str,
    min_size: tuple[int, int],
    *,
    with_year: bool = False,
    with_maybe: bool = True,
    with_text: bool = False,
    batch_rows: int = SCORE_CHUNK_ROWS,
    env_manager: str = "local",
    limits: ServingLimits | None = None,
) -> DataFrame:
    """The predictions for ``read_sources`` rows, lazily: ``file``, (``year``), ``genres``,
    ``maybe`` (empty when the model has none: ``with_maybe`` False), ``text`` (what OCR
    read, for a model that reads the words: ``with_text``), the ``score_*`` columns and
    ``error``.

    ``batch_rows`` is the number of images per model call (the Arrow batch size); the model's
    per-request limits are raised to fit it (``extra_env``), its per-image limit is kept.
    """
    import mlflow
    from pyspark.sql import functions as F

    limits = limits or ServingLimits.from_env()
    spark = inputs.sparkSession
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
    model = mlflow.pyfunc.spark_udf(
        spark,
        model_path,
        result_type=", ".join(
            ["genres array<string>"]
            + (["maybe array<string>"] if with_maybe else [])
            + ([f"{TEXT_COLUMN} string"] if with_text else [])
            + [f"{c} double" for c in SCORE_COLUMNS]
        ),
        env_manager=env_manager,
        extra_env={
            ENV_MAX_ROWS: str(batch_rows),
            ENV_MAX_IMAGE_PIXELS: str(limits.max_image_pixels),
            ENV_MAX_REQUEST_PIXELS: str(batch_rows * limits.max_image_pixels),
            ENV_TIMEOUT: str(BATCH_TIMEOUT_S),
            # One TensorFlow thread pool per task, sized to the task's cores: by default
            # every task's model would use all of the executor's cores.
            "TF_NUM_INTRAOP_THREADS": spark.conf.get("spark.task.cpus", "1"),
            "TF_NUM_INTEROP_THREADS": "1",
        },
    )
    read = reader(limits.max_image_pixels, min_size)
    checked = inputs.withColumn("_in", read(F.col("path"), F.col("year")))
    stand_in = F.lit(example_poster())
    model_input: list[Column] = [F.coalesce(F.col("_in.image"), stand_in).alias("image")]
    if with_year:
        model_input.append(F.col("_in.year").alias("year"))
    scored = checked.withColumn("_out", model(F.struct(*model_input)))
    ok = F.col("_in.error").isNull()
    columns: list[Column] = [F.col("file")]
    if with_year:
        columns.append(F.when(F.col("_in.year") > 0, F.col("_in.year")).alias("year"))
    none = F.array().cast("array<string>")
    columns.append(F.when(ok, F.col("_out.genres")).otherwise(none).alias("genres"))
    maybe = F.when(ok, F.col("_out.maybe")).otherwise(none) if with_maybe else none
    columns.append(maybe.alias("maybe"))
    if with_text:
        columns.append(F.when(ok, F.col(f"_out.{TEXT_COLUMN}")).alias(TEXT_COLUMN))
    columns += [F.when(ok, F.col(f"_out.{c}")).alias(c) for c in SCORE_COLUMNS]
    columns.append(F.col("_in.error").alias("error"))
    return scored.select(*columns)


# --------------------------------------------------------------------------- the job
def batch_score(
    spark: SparkSession,
    sources: Sequence[str | Path],
    out: str,
    model_uri: str = CHAMPION_URI,
    *,
    fmt: str | None = None,
    path_column: str = "path",
    year_column: str | None = None,
    batch_rows: int = SCORE_CHUNK_ROWS,
    partitions: int | None = None,
    env_manager: str = "local",
) -> BatchReport:
    """Score ``sources`` with the model at ``model_uri`` into the folder ``out``.

    The model is downloaded once on the driver (tracking and registry URIs must already be
    configured for ``models:/`` URIs; the CLI does it); ``spark_udf`` ships it to executors.
    ``seconds`` in the report covers the Spark job: reading, decoding, scoring, writing.
    """
    import mlflow

    fmt = fmt or output_format(out)
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    if env_manager not in ENV_MANAGERS:
        raise ValueError(f"env_manager must be one of {ENV_MANAGERS}, got {env_manager!r}")
    inputs = read_sources(spark, sources, path_column, year_column, partitions)
    with tempfile.TemporaryDirectory(prefix="posterml-batch-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp))
        scored = score_frame(
            inputs,
            str(local),
            model_image_size(local),
            with_year=year_column is not None,
            with_maybe=model_has_maybe(local),
            with_text=model_answers(local, TEXT_COLUMN),
            batch_rows=batch_rows,
            env_manager=env_manager,
        )
        start = time.perf_counter()
        written = write_atomically(scored, out, fmt)
        seconds = time.perf_counter() - start
    return BatchReport(written, fmt, *count_rows(spark, written, fmt), seconds)
