"""Beyond one machine, on a real PostgreSQL: workers sharing one Optuna study, and a team
MLflow tracking server that runs log to, models are registered in and served from over HTTP.

Two ``resnet_svm`` workers run in parallel as separate processes (what two ``mlflow run``
workers are), with ``--storage postgresql://...`` and one ``--study-name``; they log to
``mlflow server --backend-store-uri postgresql://... --artifacts-destination DIR``, from
their own working folder, so every run and artifact travels over HTTP.
"""

# Fixtures are imported from engines/model_fixture and used as same-named arguments:
# ruff: noqa: F811
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from bad_inputs import b64, poster_jpeg
from engines import PostgresServer, postgres  # noqa: F401
from model_fixture import SERVER_START_TIMEOUT_S

from benchmarks._server import LocalModelServer, TrackingServer
from posterml.names import CHAMPION_ALIAS, CHAMPION_URI, MODEL_NAME

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
STUDY = "shared-study"
N_WORKERS, N_TRIALS = 2, 2
WORKER_TIMEOUT_S = 900


@dataclass(frozen=True)
class SharedSearch:
    """What the two workers left behind: the study's storage and the tracking server."""

    storage: str
    server: TrackingServer
    artifacts: Path
    workdir: Path


def _env(tracking_uri: str) -> dict[str, str]:
    return os.environ | {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_REGISTRY_URI": tracking_uri,
        "PYTHONPATH": str(REPO),
    }


@pytest.fixture(scope="module")
def shared_search(postgres: PostgresServer, tmp_path_factory) -> SharedSearch:
    """Two worker processes, one study on PostgreSQL, runs logged to the tracking server."""
    root = tmp_path_factory.mktemp("team")
    server = TrackingServer(postgres.create_database("mlflow"), root, root / "artifacts", cwd=root)
    storage = postgres.create_database("optuna")
    workdir = root / "workers"
    workdir.mkdir()
    command = [
        sys.executable, "-m", "experiments.run", "resnet_svm",
        "--data", "synthetic", "--backbone", "efficientnet_lite0",
        "--storage", storage, "--study-name", STUDY, "--n-trials", str(N_TRIALS),
        "--class-weight", "balanced", "--cv-folds", "2",
    ]  # fmt: skip
    workers: list[subprocess.Popen] = []
    server.start()
    try:
        for _ in range(N_WORKERS):
            workers.append(
                subprocess.Popen(
                    command,
                    cwd=workdir,
                    env=_env(server.url),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        for worker in workers:
            output, _ = worker.communicate(timeout=WORKER_TIMEOUT_S)
            assert worker.returncode == 0, output[-4000:]
        yield SharedSearch(storage, server, root / "artifacts", workdir)
    finally:
        for worker in workers:
            worker.kill()  # only still running if a wait failed
        server.stop()


def test_workers_share_one_study_and_log_over_http(shared_search: SharedSearch):
    import mlflow
    import optuna

    study = optuna.load_study(study_name=STUDY, storage=shared_search.storage)
    trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) == N_WORKERS * N_TRIALS
    assert sorted(t.number for t in trials) == list(range(N_WORKERS * N_TRIALS))
    settings = {tuple(sorted(t.params.items())) for t in trials}
    assert len(settings) == len(trials), "two workers drew the same parameters"

    # Every trial is a run on the tracking server, nested in its worker's parent run.
    client = mlflow.MlflowClient(tracking_uri=shared_search.server.url)
    parents: dict[str, list[int]] = {}
    for trial in trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["optuna_study"] == STUDY
        parents.setdefault(run.data.tags["mlflow.parentRunId"], []).append(trial.number)
    assert len(parents) == N_WORKERS
    assert all(len(numbers) == N_TRIALS for numbers in parents.values())
    for parent_id in parents:
        parent = client.get_run(parent_id)
        assert parent.info.status == "FINISHED"
        assert parent.data.tags["posterml.role"] == "experiment"

    # Artifacts went through the server into its destination, none into the workers' folder.
    assert list(shared_search.artifacts.rglob("MLmodel"))
    assert not {"mlruns", "mlartifacts", "mlflow.db"} & {
        p.name for p in shared_search.workdir.iterdir()
    }


def test_register_and_serve_from_the_team_server(shared_search: SharedSearch, tmp_path):
    import mlflow

    url = shared_search.server.url
    done = subprocess.run(
        [sys.executable, "-m", "posterml.cli", "register", "--experiment", "Default"],
        cwd=tmp_path,
        env=_env(url),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert f"registered {MODEL_NAME} v1" in done.stdout

    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS)
    assert client.get_run(champion.run_id).data.tags["posterml.role"] == "experiment"

    server = LocalModelServer(
        CHAMPION_URI, tmp_path, tracking_uri=url, timeout=SERVER_START_TIMEOUT_S, cwd=tmp_path
    )
    with server:
        answer = requests.post(
            f"{server.url}/invocations",
            json={"dataframe_records": [{"image": b64(poster_jpeg(seed=3))}]},
            timeout=60,
        )
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    assert prediction["genres"] and "score_drama" in prediction
