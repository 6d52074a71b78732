"""Keras fits log one point per epoch to the active MLflow run (a real sqlite store), and stop
between batches when told to."""

from __future__ import annotations

import os
import signal

import mlflow
import numpy as np
import pytest
from helpers import toy_features
from mlflow import MlflowClient

from posterml.classifiers.finetune import _f1_early_stopping
from posterml.classifiers.keras_callbacks import epoch_metrics
from posterml.classifiers.keras_models import MLPClassifier
from posterml.io import Terminated, unwind_on_signals

pytestmark = pytest.mark.slow


def _mlp(epochs: int, patience: int) -> MLPClassifier:
    return MLPClassifier(epochs=epochs, patience=patience, hidden=(8,), learning_rate=0.05)


def _history(run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in MlflowClient().get_metric_history(run_id, key)]


def test_epoch_metrics_renames_keras_loss():
    assert epoch_metrics({"loss": np.float32(0.5), "val_loss": 0.25}) == {
        "train_loss": 0.5,
        "val_loss": 0.25,
    }
    assert epoch_metrics(None) == {}


def test_each_epoch_is_logged_to_the_active_nested_run(tracking_uri):
    X, Y = toy_features(n=96)
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="trial 0", nested=True) as trial:
            model = _mlp(epochs=4, patience=10).fit(X, Y, X[:32], Y[:32])
    assert model.epochs_trained_ == 4
    for key in ("train_loss", "val_loss", "learning_rate"):
        history = _history(trial.info.run_id, key)
        assert [step for step, _ in history] == [0, 1, 2, 3], key
        assert all(np.isfinite(value) for _, value in history), key
    assert mlflow.get_run(parent.info.run_id).data.metrics == {}  # the trial's, not the parent's


def test_early_stopped_fit_logs_the_epochs_it_trained(tracking_uri):
    """Early stopping ends the curve where training ended; metrics that an earlier callback
    adds to the epoch's logs (the fine-tuner's validation F1) are logged too."""

    class F1StoppedMLP(MLPClassifier):
        def early_stopping(self, validation):
            return _f1_early_stopping(validation, self.patience)

    X, Y = toy_features(n=96)
    noise = np.random.default_rng(3).normal(size=X.shape).astype(np.float32)
    model = F1StoppedMLP(epochs=30, patience=1, hidden=(8,), learning_rate=0.05)
    with mlflow.start_run() as run:
        model.fit(X, Y, noise[:32], Y[:32])  # validation on noise: F1 soon stops improving
    assert model.epochs_trained_ < 30
    steps = list(range(model.epochs_trained_))
    assert [s for s, _ in _history(run.info.run_id, "val_f1_best_cut")] == steps
    assert [s for s, _ in _history(run.info.run_id, "train_loss")] == steps


def test_no_active_run_logs_nothing(tracking_uri):
    X, Y = toy_features(n=64)
    _mlp(epochs=2, patience=5).fit(X, Y, X[:16], Y[:16])
    assert mlflow.active_run() is None
    assert mlflow.search_runs(search_all_experiments=True).empty


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_during_training_takes_effect_after_the_batch(signum):
    """Training holds stops back while TensorFlow runs (a signal raised inside its C++ came
    out as a SystemError), and raises them at the end of the batch, not of the fit."""
    import keras

    begun, ended = [], []

    class SignalledMLP(MLPClassifier):
        def callbacks(self):
            class Signal(keras.callbacks.Callback):
                def on_train_batch_begin(self, batch, logs=None):
                    begun.append(batch)
                    if len(begun) == 3:
                        os.kill(os.getpid(), signum)  # the handler runs before the step

                def on_train_batch_end(self, batch, logs=None):
                    ended.append(batch)

            return [Signal()]

    X, Y = toy_features(n=256)
    model = SignalledMLP(epochs=50, patience=100, hidden=(8,), batch_size=16)
    expected = KeyboardInterrupt if signum == signal.SIGINT else Terminated
    with pytest.raises(expected), unwind_on_signals():
        model.fit(X, Y)
    assert begun == [0, 1, 2]  # 16 batches an epoch x 50 epochs were planned
    assert ended == [0, 1, 2]  # the signalled batch's step still ran to its end
