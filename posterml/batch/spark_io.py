"""What Spark batch scoring reads and how its output is committed (``posterml.batch.spark``).

Inputs: image files and folders are listed on the driver by ``collect_files`` (as ``posterml
predict`` lists them); ``.parquet``/``.csv`` tables of image paths are read by Spark, their
relative paths taken relative to the table's folder. Executors then read and check every
image themselves (:func:`read_for_model`): the same checks the model makes, so a row that
passes never makes the model reject its batch, and one that fails carries its reason.

Output: a Spark folder written under a hidden temp name beside the target (readers listing
the folder skip names starting with a dot) and renamed over it only after the job succeeded,
through Hadoop's FileSystem API, so the same code commits to a local disk or HDFS; a failed
or interrupted job leaves the previous output as it was and no temp folder behind.
"""

from __future__ import annotations

import base64
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from posterml.batch.local import collect_files
from posterml.data.images import ImageDecodeError, decode_image, read_image_file
from posterml.io import temp_name
from posterml.serving.limits import MAX_BASE64_CHARS
from posterml.serving.rows import year_problem

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TABLE_SUFFIXES = (".parquet", ".csv")
TABLE_FORMATS = ("parquet", "csv")
# Rows per Spark task: every task loads the model (1.2-1.5 s once TensorFlow is imported,
# benchmarks/batch.py), so a task of 2,000 posters (~2 min at ~17 posters/s per core) spends
# ~1% loading, and a failed task costs 2 min again. Fewer rows than cores x 2,000 still get
# one task per core.
ROWS_PER_TASK = 2_000
# The model refuses an image of more base64 characters than this; its bytes, 4 per 3 chars.
MAX_FILE_BYTES = MAX_BASE64_CHARS // 4 * 3
# How long no job, stage or task must have run before a cancelled write counts as over.
QUIET_S = 0.5
READ_SCHEMA = "image string, year long, error string"


def output_format(out: str) -> str:
    """``csv`` for an output named ``*.csv``, else ``parquet``."""
    return "csv" if out.rstrip("/").lower().endswith(".csv") else "parquet"


def is_table(source: str | Path) -> bool:
    """A ``.parquet``/``.csv`` source is a table of image paths; anything else is images."""
    return str(source).rstrip("/").lower().endswith(TABLE_SUFFIXES)


# --------------------------------------------------------------------------- inputs
def read_sources(
    spark: SparkSession,
    sources: Sequence[str | Path],
    path_column: str = "path",
    year_column: str | None = None,
    partitions: int | None = None,
) -> DataFrame:
    """One row per image to score: ``file`` (as given), ``path`` (where executors read it)
    and ``year`` (text, null when unknown).

    Image files and folders are listed here, on the driver, by ``collect_files`` and spread
    over ``partitions`` in order; tables are read by Spark and spread over ``partitions``
    when they come in fewer (default: one per core, more for over ``ROWS_PER_TASK`` rows).
    """
    tables = [str(s) for s in sources if is_table(s)]
    files = collect_files(s for s in sources if not is_table(s))
    frames = []
    if files:
        rows = [(str(f), os.path.abspath(f), None) for f in files]
        slices = partitions or default_partitions(spark, len(rows))
        frames.append(
            spark.createDataFrame(
                spark.sparkContext.parallelize(rows, slices),
                "file string, path string, year string",
            )
        )
    for table in tables:
        frame = _read_table(spark, table, path_column, year_column)
        wanted = partitions or default_partitions(spark, frame.count())
        if frame.rdd.getNumPartitions() < wanted:
            frame = frame.repartition(wanted)
        frames.append(frame)
    if not frames:
        raise ValueError("nothing to score: no image files among the sources")
    combined = frames[0]
    for frame in frames[1:]:
        combined = combined.unionByName(frame)
    return combined


def default_partitions(spark: SparkSession, n_rows: int) -> int:
    """One task per core, or one per ``ROWS_PER_TASK`` rows when there are more."""
    return max(spark.sparkContext.defaultParallelism, math.ceil(n_rows / ROWS_PER_TASK))


def _read_table(
    spark: SparkSession, table: str, path_column: str, year_column: str | None
) -> DataFrame:
    from pyspark.sql import functions as F

    reader = spark.read.option("header", True) if table.lower().endswith(".csv") else spark.read
    frame = reader.format(output_format(table)).load(table)
    missing = [c for c in (path_column, year_column) if c and c not in frame.columns]
    if missing:
        raise ValueError(
            f"{table}: no column {', '.join(map(repr, missing))} (columns: "
            f"{', '.join(frame.columns)}); name the path column with --path-column"
        )
    given = F.col(path_column).cast("string")
    path = given
    if "://" not in table:  # a local table: its relative paths are relative to its folder
        base = os.path.dirname(os.path.abspath(table))
        absolute = given.startswith("/") | given.contains("://")
        path = F.when(absolute, given).otherwise(F.concat(F.lit(base + os.sep), given))
    year = F.col(year_column).cast("string") if year_column else F.lit(None).cast("string")
    return frame.select(given.alias("file"), path.alias("path"), year.alias("year"))


def read_for_model(
    path: str | None, year: float, max_pixels: int, min_size: tuple[int, int]
) -> tuple[str | None, int, str | None]:
    """``(base64 bytes, year or 0, None)`` for a usable row, ``(None, 0, reason)`` otherwise.

    The checks are the model's own (``posterml.serving.rows``): size of
    the payload, the one decoder towards the model's ``min_size`` under ``max_pixels``, and
    a release year in range (0 or NaN: unknown), so a row that passes never makes the model
    reject its batch.
    """
    if not isinstance(path, str) or not path:  # a null cell arrives as None or NaN
        return None, 0, "no path (empty)"
    if problem := year_problem(year):
        return None, 0, problem
    try:
        if _size(path) > MAX_FILE_BYTES:  # before reading it: a stray 10 GB file stays on disk
            raise ImageDecodeError(f"image file too large (over {MAX_FILE_BYTES:,} bytes)")
        data = read_image_file(path)
        decode_image(data, path, max_pixels=max_pixels, min_size=min_size)
    except ImageDecodeError as exc:
        return None, 0, exc.reason
    return base64.b64encode(data).decode("ascii"), int(year) if math.isfinite(year) else 0, None


def _size(path: str) -> int:
    """The file's size, 0 if it cannot be read (``read_image_file`` then says why)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def reader(max_pixels: int, min_size: tuple[int, int]):
    """The pandas UDF (path, year text) -> struct<image, year, error>, run on executors.

    Non-deterministic for Spark's optimiser, which then never copies it into several
    expressions: every file is read and decoded once.
    """
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(READ_SCHEMA)
    def read(paths: pd.Series, years: pd.Series) -> pd.DataFrame:
        numeric = pd.to_numeric(years, errors="coerce").astype("float64").fillna(0.0)
        rows = [
            read_for_model(p, y, max_pixels, min_size)
            for p, y in zip(paths, numeric.tolist(), strict=True)
        ]
        return pd.DataFrame(rows, columns=["image", "year", "error"])

    return read.asNondeterministic()


# --------------------------------------------------------------------------- outputs
def write_atomically(frame: DataFrame, out: str, fmt: str) -> str:
    """Write ``frame`` to the folder ``out`` (``parquet`` or ``csv``), whole or not at all.

    Spark writes into a hidden temp folder beside ``out`` (``posterml.io.temp_name``), which
    replaces ``out`` only after the job succeeded. Returns the qualified output path.
    """
    from pyspark.sql import functions as F

    if fmt not in TABLE_FORMATS:
        raise ValueError(f"output format must be one of {TABLE_FORMATS}, got {fmt!r}")
    spark = frame.sparkSession
    hadoop = spark._jvm.org.apache.hadoop.fs  # classic Spark: the JVM is ours to call
    target = hadoop.Path(out)
    fs = target.getFileSystem(spark._jsc.hadoopConfiguration())
    target = fs.makeQualified(target)
    parent = target.getParent()
    fs.mkdirs(parent)
    tmp = hadoop.Path(parent, temp_name(Path(target.getName())))
    old = None
    try:
        if fmt == "csv":  # CSV has no arrays
            for column in ("genres", "maybe"):
                if column in frame.columns:
                    frame = frame.withColumn(column, F.concat_ws("|", column))
        frame.write.format(fmt).option("header", True).save(tmp.toString())
        if fs.exists(target):
            old = hadoop.Path(parent, temp_name(Path(target.getName())))
            if not fs.rename(target, old):
                raise OSError(f"cannot move the previous {target} aside")
        if not fs.rename(tmp, target):
            raise OSError(f"cannot rename {tmp} to {target}")
    except BaseException:
        _stop_tasks(spark)
        _delete_for_good(fs, tmp)
        if old is not None and not fs.exists(target):
            fs.rename(old, target)  # put the previous output back
        raise
    if old is not None:
        fs.delete(old, True)
    return target.toString()


def count_rows(spark: SparkSession, out: str, fmt: str) -> tuple[int, int]:
    """Rows of a written output and rows of it with an ``error`` (read back: cheap)."""
    from pyspark.sql import functions as F

    written = spark.read.format(fmt).option("header", True).load(out)
    total, errors = written.agg(F.count(F.lit(1)), F.count("error")).first()
    return int(total), int(errors)


def _stop_tasks(spark: SparkSession, timeout: float = 60.0) -> None:
    """Cancel every job and wait (up to ``timeout``) until nothing has run for half a second.

    A failed or cancelled job's tasks are killed asynchronously and the status tracker
    learns of them late; one still running could write into the temp folder after it was
    removed and leave it behind.
    """
    spark.sparkContext.cancelAllJobs()
    jobs = spark.sparkContext.statusTracker()
    executors = spark._jsc.sc().statusTracker()
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        busy = jobs.getActiveJobsIds() or jobs.getActiveStageIds()
        busy = busy or sum(info.numRunningTasks() for info in executors.getExecutorInfos())
        now = time.monotonic()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= QUIET_S:
            return
        time.sleep(0.05)


def _delete_for_good(fs, path, seconds: float = 2.0) -> None:
    """Delete ``path`` and keep deleting it for ``seconds`` should a late task bring it back."""
    deadline = time.monotonic() + seconds
    fs.delete(path, True)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if fs.exists(path):
            fs.delete(path, True)
