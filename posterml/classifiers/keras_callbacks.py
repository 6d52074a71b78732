"""Keras callbacks: a tqdm bar over epochs, per-epoch MLflow curves, and stops between batches.

Per-epoch losses go to the active MLflow run (a trial's nested run during a search, the
parent run during the refit), one value per epoch at ``step=epoch``, so the run page plots
the learning curves. MLflow's own ``mlflow.keras.MlflowCallback`` was not used: it also logs
every optimizer setting as a param (~15 ``optimizer_*`` params per trial), writes a model
summary artifact, logs Keras' raw key ``loss`` (ours: ``train_loss``, next to ``val_loss``)
and adds a step-less ``validation_*`` copy of each validation metric.

Keras is imported lazily (``keras_models`` explains why).
"""

from __future__ import annotations

from collections.abc import Mapping

import mlflow

from posterml.io import raise_if_stopped

# Keras' log keys that get a clearer metric name; every other key keeps its own
# (``val_loss``, ``learning_rate``, the fine-tuner's ``val_f1_best_cut``).
METRIC_NAMES = {"loss": "train_loss"}


def epoch_metrics(logs: Mapping[str, float] | None) -> dict[str, float]:
    """Keras' end-of-epoch ``logs`` as MLflow metrics (renamed, plain floats)."""
    return {METRIC_NAMES.get(key, key): float(value) for key, value in (logs or {}).items()}


def epoch_progress(epochs: int, name: str):
    """A tqdm bar over epochs (s/epoch, ETA, the epoch's logs): training is otherwise silent."""
    from tqdm.keras import TqdmCallback

    # verbose=0: one bar over epochs, no per-batch bar; leave=False: trials do not pile up.
    return TqdmCallback(epochs=epochs, verbose=0, desc=f"{name} epochs", leave=False)


def mlflow_epoch_logger():
    """A callback logging ``epoch_metrics`` to the active MLflow run after each epoch.

    Without an active run it logs nothing (a classifier fitted in a notebook or a test does
    not start a run behind the user's back). Put it last among the callbacks: metrics that
    earlier callbacks add to ``logs`` (the fine-tuner's validation F1) are then included.
    """
    import keras

    class MlflowEpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            metrics = epoch_metrics(logs)
            if metrics and mlflow.active_run() is not None:
                mlflow.log_metrics(metrics, step=epoch)

    return MlflowEpochLogger()


def stops_between_batches():
    """A callback that raises a held-back Ctrl-C/SIGTERM at the end of a batch.

    Training runs inside ``posterml.io.signals_deferred`` (a stop raised inside TensorFlow's
    C++ comes out mangled); this lets the stop take effect after the current batch instead
    of after the last epoch.
    """
    import keras

    class StopsBetweenBatches(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise_if_stopped()

        def on_test_batch_end(self, batch, logs=None):
            raise_if_stopped()

        def on_epoch_end(self, epoch, logs=None):
            raise_if_stopped()

    return StopsBetweenBatches()
