"""Batch scoring throughput: ``posterml predict`` in-process against Spark, same posters.

    python -m benchmarks.batch --model models:/poster-genre-classifier@champion \\
        [--data ../shared/posters] [--n 1000] [--master local[2]] [--batch-size 64]
    python -m benchmarks.batch --smoke   # the smoke model, 16 synthetic posters, local[1]

On the first ``--n`` posters of ``--data``, three measurements, one after the other:

* the per-image check of batch scoring alone (read, size, decode towards the model's input
  size: ``spark_io.read_for_model``), on one core: what scoring on Spark pays in addition;
* ``posterml predict`` (``predict_files``): images/s as it reports them (model loaded), and
  the whole call;
* loading the model once (``mlflow.pyfunc.load_model``), what every Spark task does first;
* ``posterml batch-score`` on Spark ``--master`` (``batch_score``, Parquet): the session
  start apart, then the job as a user runs it (Python workers start, the model loads in
  every task, posters are read, checked, scored and written), then the same job again with
  the workers up, closer to what the tasks of a long job see.

Both outputs are compared (same genres, scores within 1e-5) so the rates are for the same
work. Outputs go to a temp folder and are removed: they derive from real posters. Nothing
else may run for the numbers to mean anything; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import _smoke
from benchmarks._common import SHARED_POSTERS
from posterml.batch.local import predict_files
from posterml.batch.spark import batch_score, model_image_size, spark_session
from posterml.batch.spark_io import read_for_model
from posterml.serving.limits import ServingLimits
from posterml.serving.pyfunc import SCORE_CHUNK_ROWS, SCORE_COLUMNS
from posterml.tracking import configure_tracking

DEFAULT_DATA = SHARED_POSTERS
DEFAULT_MODEL = "models:/poster-genre-classifier@champion"


def load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def local_cores(master: str) -> int:
    """Cores of a ``local[N]``/``local[*]``/``local`` master."""
    inside = master[len("local[") : -1] if master.startswith("local[") else "1"
    if inside == "*":
        return os.cpu_count() or 1
    return int(inside)


def check_rate(files: list[Path], model_dir: Path) -> float:
    """Images/s of batch scoring's own per-image check, on one core."""
    min_size = model_image_size(model_dir)
    max_pixels = ServingLimits.from_env().max_image_pixels
    start = time.perf_counter()
    errors = [read_for_model(str(f), 0.0, max_pixels, min_size)[2] for f in files]
    seconds = time.perf_counter() - start
    if any(errors):
        print(f"  {sum(map(bool, errors))} unusable poster(s) among the inputs")
    return len(files) / seconds


def same_predictions(predict_csv: Path, spark_out: Path) -> str:
    """How the two outputs compare, in words (they must hold the same predictions)."""
    ours = pd.read_csv(predict_csv, keep_default_na=False).set_index("file")
    theirs = pd.read_parquet(spark_out).set_index("file").loc[ours.index]
    genres_equal = ours["genres"].tolist() == ["|".join(g) for g in theirs["genres"]]
    diff = float(np.abs(ours[SCORE_COLUMNS].to_numpy() - theirs[SCORE_COLUMNS].to_numpy()).max())
    verdict = "same" if genres_equal and diff < 1e-5 else "DIFFERENT"
    return f"{verdict} predictions (genres equal: {genres_equal}; max score difference {diff:.1e})"


def score_on_spark(args: argparse.Namespace, files: list[Path], tmp: Path) -> None:
    """``batch-score`` on Spark ``--master``, cold then warm, compared with ``tmp/genres.csv``
    (what ``posterml predict`` wrote)."""
    start = time.perf_counter()
    spark = spark_session(args.master, app_name="posterml-bench-batch")
    started = time.perf_counter() - start
    used = local_cores(args.master)
    out = tmp / "scored.parquet"
    try:
        # Cold: as a user's job runs. Warm: the same job again in the same session, its
        # Python workers already up (each task still loads the model).
        cold = batch_score(spark, files, str(out), args.model, batch_rows=args.batch_size)
        warm = batch_score(
            spark, files, str(tmp / "again.parquet"), args.model, batch_rows=args.batch_size
        )
    finally:
        spark.stop()
    for name, job in (("cold", cold), ("warm", warm)):
        print(
            f"batch-score {args.master}, {name}: {job.images_per_second:7.1f} images/s "
            f"({job.images_per_second / used:.1f} per core; job {job.seconds:.1f} s; "
            f"{job.n_errors} unusable)"
        )
    print(f"  Spark session start {started:.1f} s, apart from the jobs")
    print(same_predictions(tmp / "genres.csv", out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--batch-size", type=int, default=SCORE_CHUNK_ROWS)
    # Smoke: local[1], one Python worker loading TensorFlow on 2 shared cores.
    args = _smoke.parse_args(parser, argv, data="synthetic", n=16, master="local[1]")
    if args.smoke:  # the smoke model, from its own store
        args.model = _smoke.smoke_model().model_uri

    import mlflow

    from posterml.data.sources import load_dataset

    configure_tracking()
    files = [Path(p) for p in load_dataset(str(args.data)).image_paths[: args.n]]
    cores = os.cpu_count() or 1
    print(f"{len(files)} posters from {args.data}; model {args.model}; {cores} cores")
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="posterml-bench-batch-") as tmp:
        model_dir = Path(mlflow.artifacts.download_artifacts(args.model, dst_path=tmp))
        rate = check_rate(files, model_dir)
        print(f"batch-score's check alone:  {rate:7.1f} images/s on 1 core")

        start = time.perf_counter()
        # machine: full-precision score columns (the default spreadsheet rounds, drops them)
        report = predict_files(
            files,
            args.model,
            Path(tmp) / "genres.csv",
            args.batch_size,
            output_format="machine",
            progress=False,
        )
        whole = time.perf_counter() - start
        print(
            f"posterml predict:           {report.images_per_second:7.1f} images/s "
            f"({report.images_per_second / cores:.1f} per core; {whole:.1f} s with the model "
            "load)"
        )

        start = time.perf_counter()
        mlflow.pyfunc.load_model(str(model_dir))  # TensorFlow already imported by predict
        load_s = time.perf_counter() - start
        print(f"loading the model (what every Spark task does first): {load_s:.1f} s")

        missing = _smoke.spark_unavailable() if args.smoke else None
        if missing:
            _smoke.skip("batch-score on Spark and the comparison with predict", missing)
        else:
            score_on_spark(args, files, Path(tmp))
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
