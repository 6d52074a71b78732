"""Optuna storage as the runner makes it: beside the tracking store, and a dead worker's
trial failed by heartbeat and retried."""

from __future__ import annotations

import time

import optuna
import pytest

from posterml.modeling.study import default_storage, optuna_storage


def test_storage_lives_beside_a_sqlite_tracking_store(tmp_path, monkeypatch):
    assert default_storage(f"sqlite:///{tmp_path}/runs/mlflow.db") == (
        f"sqlite:///{tmp_path}/runs/optuna.db"
    )
    monkeypatch.chdir(tmp_path)
    assert default_storage("sqlite:///mlflow.db") == f"sqlite:///{tmp_path}/optuna.db"
    # A tracking server has no folder of ours: the posterml cache holds the study.
    monkeypatch.setenv("POSTERML_CACHE_DIR", str(tmp_path / "cache"))
    assert default_storage("http://127.0.0.1:5000") == f"sqlite:///{tmp_path}/cache/optuna.db"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_dead_workers_trial_is_failed_and_retried(tmp_path):
    storage = optuna_storage(
        f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=1, grace_period=1
    )
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask({"C": optuna.distributions.FloatDistribution(0.1, 10.0)})
    storage.record_heartbeat(trial._trial_id)  # the worker's last sign of life
    time.sleep(2.5)
    optuna.storages.fail_stale_trials(study)  # what every live worker runs before a trial
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    retry = study.get_trials(deepcopy=False)[1]
    assert retry.params == trial.params and retry.system_attrs["failed_trial"] == trial.number
