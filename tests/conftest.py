"""Shared fixtures: an isolated MLflow sqlite store and cache per test session, the session's
tiny registered model, and a backbone registry that each test leaves as it found it."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from model_fixture import TrainedModel, tracking_store, train_tiny_model

from posterml.features.backbone_registry import (
    available_backbones,
    get_backbone,
    register_backbone,
    unregister_backbone,
)

SHARED_POSTERS = Path(__file__).resolve().parents[1].parent / "shared" / "posters"

# A shell starts a background job (`cmd &` without job control, nohup) with SIGINT ignored,
# and Python then leaves it ignored; the stop tests need Ctrl-C's usual KeyboardInterrupt.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One posterml cache per test session (the synthetic set and converted weights are
    shared by the tests; a developer's own ~/.cache is never touched).

    ``POSTERML_TEST_CACHE_DIR`` may point at a persistent folder to skip regeneration.
    """
    cache = os.environ.get("POSTERML_TEST_CACHE_DIR") or str(tmp_path_factory.mktemp("cache"))
    os.environ["POSTERML_CACHE_DIR"] = cache


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh sqlite tracking store in a temporary working directory (artifacts there too)."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # set_registry_uri also writes MLFLOW_REGISTRY_URI; monkeypatch restores it afterwards.
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    import mlflow
    import mlflow.tracking.fluent as fluent

    # A test that called set_experiment leaves its experiment id behind (a module global and
    # MLFLOW_EXPERIMENT_ID); in a fresh store that id does not exist.
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture(scope="session")
def shared_posters() -> Path:
    """``../shared/posters`` (real posters, never copied into the repo); skip if absent."""
    if not (SHARED_POSTERS / "labels.csv").is_file():
        pytest.skip("../shared/posters not available")
    return SHARED_POSTERS


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """The session's tiny registered model, trained on first use (see ``model_fixture``)."""
    return train_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def model_store(tiny_model: TrainedModel) -> Iterator[TrainedModel]:
    """Within one test, MLflow points at the tiny model's store (so ``models:/`` resolves)."""
    with tracking_store(tiny_model.tracking_uri):
        yield tiny_model


@pytest.fixture
def backbone_registry() -> Iterator[None]:
    """The test may register and unregister backbones; the registry is restored after it."""
    saved = [get_backbone(name) for name in available_backbones()]
    yield
    for name in available_backbones():
        unregister_backbone(name)
    for backbone in saved:
        register_backbone(backbone)
