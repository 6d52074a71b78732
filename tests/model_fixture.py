"""A tiny registered model and a real MLflow scoring server, shared by the serving tests.

Training even the smallest model takes seconds, so it happens once per test session (in its
own tracking store, never the developer's): the ``tiny_model`` and ``model_store`` fixtures
in ``conftest.py`` use the builders here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks._server import LocalModelServer

MODEL_NAME = "poster-genre-classifier"
CHAMPION_URI = f"models:/{MODEL_NAME}@champion"
SERVER_START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class TrainedModel:
    """A registered champion in its own sqlite tracking store under ``root``."""

    root: Path
    tracking_uri: str
    run_id: str
    version: str
    model_uri: str = CHAMPION_URI


# What MLflow keeps per process that only means something in one store: the store itself and
# the active experiment's id (``set_experiment`` writes it into a module global and the env).
STORE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")


@contextmanager
def tracking_store(uri: str, cwd: Path | None = None) -> Iterator[str]:
    """Point MLflow (env vars and globals) at ``uri``, optionally in ``cwd``; restore after.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into ``os.environ``, so
    both are saved and put back: the store never leaks into other tests. The block starts with
    no active experiment (an experiment id set for another store names nothing, or the wrong
    experiment, in this one) and the caller's is back afterwards, so an experiment set inside
    (``set_experiment``, ``run_experiment(experiment=...)``) stays inside.
    """
    import mlflow
    import mlflow.tracking.fluent as fluent

    from posterml.tracking import environment

    saved = {key: os.environ.get(key) for key in STORE_VARIABLES}
    saved_experiment = fluent._active_experiment_id
    old_cwd = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    # MLflow's setters write these variables: environment() puts them back after the finally.
    with environment({**saved, "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_ID": None}):
        fluent._active_experiment_id = None
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            yield uri
        finally:
            os.chdir(old_cwd)
            fluent._active_experiment_id = saved_experiment
            mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
            mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])


def train_tiny_model(root: Path) -> TrainedModel:
    """Train the demo's model (EfficientNet-Lite0 features + balanced SVM, 2 trials) on the
    synthetic set and register it. A pixel-PCA model would be quicker but does not beat the
    2-most-frequent-genres baseline on the synthetic set, so ``register`` rightly refuses it."""
    from posterml.modeling.cli import experiment_config
    from posterml.modeling.run import run_experiment
    from posterml.registry.promotion import register_best

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with tracking_store(uri, cwd=root):
        import mlflow

        run_id = run_experiment(
            experiment_config(
                "resnet_svm",
                data="synthetic",
                backbone="efficientnet_lite0",
                n_trials=2,
                class_weight="balanced",
                storage=f"sqlite:///{root}/optuna.db",
            )
        )
        experiment_id = mlflow.get_run(run_id).info.experiment_id
        result = register_best(experiment_id, MODEL_NAME)
    assert result.version, result.message
    return TrainedModel(root, uri, run_id, result.version)


# --------------------------------------------------------------------------- scoring server
class ScoringServer(LocalModelServer):
    """The tests' :class:`LocalModelServer`: launched on construction, run from ``workdir``.

    ``wait_ready()`` then blocks until it answers (``SERVER_START_TIMEOUT_S``), ``stop()``
    kills its process group.
    """

    def __init__(
        self, model_uri: str, tracking_uri: str, workdir: Path, port: int | None = None
    ) -> None:
        super().__init__(
            model_uri,
            workdir,
            tracking_uri=tracking_uri,
            port=port,
            timeout=SERVER_START_TIMEOUT_S,
            cwd=workdir,
        )
        self.launch()
