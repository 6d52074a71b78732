"""What ``--smoke`` means for every benchmark and research experiment: its real code path,
end to end, in seconds.

A smoke run uses the built-in synthetic set (``data="synthetic"``) and tiny budgets (one
trial, a few posters, the bundled EfficientNet-Lite0 backbone), and prints its numbers as
usual: they say the benchmark still runs, not how fast or how good anything is.
``tests/test_benchmarks.py`` runs every module's ``--smoke`` in ``benchmarks/`` and
``research/``, so a script whose imports or code path rot fails CI instead of the next person
who needs its numbers.

Benchmarks that need a model (scoring servers, Spark, the UI) share one: the demo's recipe
on the synthetic set, trained once into its own store under the posterml cache (never the
user's ``$MLFLOW_TRACKING_URI``) and retrained whenever posterml's code changes. Whatever a
smoke run needs and this machine lacks (Chromium, Java) is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SMOKE_HELP = (
    "a few-second run on the synthetic set with tiny budgets: checks the benchmark still "
    "runs (tests/test_benchmarks.py runs it); its numbers mean nothing"
)
# Part of the smoke model's cache key: bump when the recipe below changes.
SMOKE_MODEL_RECIPE = 1
SMOKE_EXPERIMENT = "smoke"
PRUNE_AFTER_S = 3600


def parse_args(
    parser: argparse.ArgumentParser, argv: list[str] | None, **smoke_defaults: object
) -> argparse.Namespace:
    """Add ``--smoke`` to ``parser`` and parse ``argv``; with ``--smoke``, ``smoke_defaults``
    replace the parser's defaults (flags given on the command line still win)."""
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**smoke_defaults)
        args = parser.parse_args(argv)
    return args


def say(message: str) -> None:
    """One ``smoke:`` line on stdout (flushed: servers and Spark write in between)."""
    print(f"smoke: {message}", flush=True)


def skip(part: str, reason: str) -> None:
    """Say that a smoke run leaves out ``part``, and why (what this machine lacks)."""
    say(f"skipped {part}: {reason}")


def synthetic_root() -> Path:
    """The synthetic set's folder (``labels.csv`` and ``images/``), generated on first use."""
    from posterml.data.sources import SYNTHETIC, load_dataset

    return load_dataset(SYNTHETIC).root


def spark_unavailable() -> str | None:
    """Why Spark cannot run here (no pyspark, no Java), or None when it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark not installed (pip install -e '.[scale]')"
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and Path(java_home, "bin", "java").exists()):
        return "no Java runtime for Spark (apt-get install default-jre-headless)"
    return None


def use_store(uri: str) -> None:
    """Point this process, and the servers it starts, at the tracking store ``uri``."""
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = uri
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


@contextmanager
def scratch_store(experiment: str) -> Iterator[str]:
    """A throwaway sqlite store with ``experiment`` in it (artifacts beside it, not in the
    working directory), active until the block ends, then removed; yields its URI."""
    import mlflow

    from posterml.tracking import environment

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    uri_keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    # Entered unchanged; on exit they are put back after MLflow's setters, which write them.
    with (
        environment({k: os.environ.get(k) for k in uri_keys}),
        tempfile.TemporaryDirectory(prefix="posterml-smoke-store-") as name,
    ):
        folder = Path(name)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        use_store(uri)
        mlflow.MlflowClient().create_experiment(experiment, str(folder / "artifacts"))
        say(f"runs go to a throwaway store, removed at the end ({uri})")
        try:
            yield uri
        finally:
            mlflow.set_tracking_uri(before[0])
            mlflow.set_registry_uri(before[1])


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class SmokeModel:
    """The registered smoke model: its store, its run, and the alias URI to serve."""

    tracking_uri: str
    run_id: str
    model_uri: str


def _code_key() -> str:
    """A digest of posterml's code, this recipe and MLflow's version: a smoke model trained by
    other code could hide (or fake) a failure, so a change means a new model."""
    import mlflow

    import posterml

    digest = hashlib.sha256(f"{SMOKE_MODEL_RECIPE} {mlflow.__version__}".encode())
    package = Path(posterml.__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def smoke_model() -> SmokeModel:
    """The smoke model, trained and registered on first use, and this process pointed at its
    store (``use_store``): ``models:/poster-genre-classifier@champion`` resolves to it.

    Its store lives in the posterml cache, so the user's store never gets a synthetic
    champion; a lock lets concurrent smoke runs share one training."""
    from posterml.cache_dir import cache_dir
    from posterml.names import CHAMPION_URI

    folder = cache_dir() / "benchmarks" / f"smoke-model-{_code_key()}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        ready = folder / "ready"
        if ready.is_file():
            run_id = ready.read_text().strip()
            use_store(uri)
            say(f"model {CHAMPION_URI} (run {run_id}, trained earlier for this code) in {uri}")
        else:
            shutil.rmtree(folder, ignore_errors=True)  # an interrupted training's leftovers
            _prune(folder)
            folder.mkdir()
            start = time.perf_counter()
            run_id = _train_and_register(folder, uri)
            ready.write_text(run_id)
            say(
                f"model {CHAMPION_URI} (run {run_id}) trained and registered in "
                f"{time.perf_counter() - start:.1f} s in {uri}"
            )
    return SmokeModel(uri, run_id, CHAMPION_URI)


def _prune(current: Path) -> None:
    """Remove the smoke models of older code (~16 MB each) once no smoke run can still be
    using them (an hour after they were made: a smoke run takes seconds)."""
    for old in current.parent.glob("smoke-model-*"):
        if old.is_dir() and old != current and time.time() - old.stat().st_mtime > PRUNE_AFTER_S:
            shutil.rmtree(old, ignore_errors=True)
            old.with_suffix(".lock").unlink(missing_ok=True)


def _train_and_register(folder: Path, uri: str) -> str:
    """The demo's recipe (Lite0 features, balanced SVM) with one trial, split like
    ``research.quality`` (train 1990-2018, cross-period before 1980); its run id."""
    import mlflow

    from posterml.modeling.cli import experiment_config
    from posterml.modeling.run import run_experiment
    from posterml.registry.promotion import register_best

    use_store(uri)
    experiment_id = mlflow.MlflowClient().create_experiment(
        SMOKE_EXPERIMENT, str(folder / "artifacts")
    )
    run_id = run_experiment(
        experiment_config(
            "resnet_svm",
            data="synthetic",
            backbone="efficientnet_lite0",
            class_weight="balanced",
            n_trials=1,
            cv_folds=2,
            train_years="1990-2018",
            test_years="-1979",
            storage=f"sqlite:///{folder / 'optuna.db'}",
            experiment=SMOKE_EXPERIMENT,
        )
    )
    result = register_best(experiment_id)
    if not result.version:
        raise RuntimeError(f"smoke model not registered: {result.message}")
    return run_id
