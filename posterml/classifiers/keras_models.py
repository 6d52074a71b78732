"""Keras classifiers: the study's MLP on backbone features and the CNN trained from scratch.

Both share one training routine (binary cross-entropy on sigmoid outputs, optional per-genre
positive weighting, early stopping on validation) and one save format, so the two families
differ only in the network they build. TensorFlow is imported lazily: it costs ~8 s.

A saved Keras classifier is ``network.keras`` (architecture + weights, loaded in Keras' safe
mode; the networks use no Lambda layers, so they need no unsafe deserialisation) next to the
common ``classifier.json`` (hyperparameters, epochs trained) and ``arrays.npz`` (the MLP's
standardisation mean and scale).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from posterml.classifiers.base import GenreClassifier, register_classifier
from posterml.classifiers.keras_callbacks import (
    epoch_progress,
    mlflow_epoch_logger,
    stops_between_batches,
)
from posterml.io import signals_deferred

POSITIVE_WEIGHTINGS = ("none", "sqrt", "balanced")


def positive_weights(Y: np.ndarray, weighting: str) -> np.ndarray:
    """Per-genre weight on positive examples: 1, sqrt(neg/pos) or neg/pos (capped at 50).

    The study promised an imbalance correction for the MLP but never applied one; this is it.
    """
    if weighting not in POSITIVE_WEIGHTINGS:
        raise ValueError(f"positive weighting {weighting!r}: use one of {POSITIVE_WEIGHTINGS}")
    pos = np.asarray(Y).sum(axis=0).astype(float)
    ratio = np.clip((len(Y) - pos) / np.maximum(pos, 1.0), 1.0, 50.0)
    return {"none": np.ones_like(ratio), "sqrt": np.sqrt(ratio), "balanced": ratio}[weighting]


def _weighted_bce(pos_weight: np.ndarray):
    import keras
    from keras import ops

    weights = ops.convert_to_tensor(pos_weight.astype("float32"))

    def loss(y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.clip(y_pred, keras.config.epsilon(), 1 - keras.config.epsilon())
        terms = weights * y_true * ops.log(y_pred) + (1 - y_true) * ops.log(1 - y_pred)
        return -ops.mean(terms, axis=-1)

    return loss


class KerasGenreClassifier(GenreClassifier):
    """Base for Keras families: subclasses implement ``build_network(input_shape)``.

    ``fit`` trains with early stopping (patience on validation loss when validation data is
    given) and restores the best weights. ``seed`` makes initialisation repeatable. Each
    epoch's losses go to the active MLflow run as curves (``keras_callbacks``).
    """

    def __init__(
        self,
        epochs: int = 50,
        batch_size: int = 64,
        patience: int = 10,
        positive_weighting: str = "none",
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.positive_weighting = positive_weighting
        self.seed = seed
        self.verbose = verbose
        self.model_ = None

    # -- to implement ------------------------------------------------------------------
    def build_network(self, input_shape: tuple[int, ...], n_outputs: int):
        raise NotImplementedError

    def make_optimizer(self):
        import keras

        return keras.optimizers.Adam(1e-3)

    def callbacks(self) -> list:
        return []

    def make_loss(self, Y: np.ndarray):
        """The training loss: binary cross-entropy with per-genre positive weights."""
        return _weighted_bce(positive_weights(Y, self.positive_weighting))

    def early_stopping(self, validation: tuple[np.ndarray, np.ndarray]):
        """Stop when validation loss stops improving, keeping the best weights."""
        import keras

        return keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.patience, restore_best_weights=True
        )

    def prepare(self, X: np.ndarray, fitting: bool) -> np.ndarray:
        """Input transform (e.g. standardisation); ``fitting`` learns its statistics."""
        return np.asarray(X, dtype=np.float32)

    # -- shared training ---------------------------------------------------------------
    def fit(self, X, Y, X_val=None, Y_val=None) -> KerasGenreClassifier:
        import keras

        keras.utils.set_random_seed(self.seed)
        X = self.prepare(X, fitting=True)
        Y = np.asarray(Y, dtype=np.float32)
        self.model_ = self.build_network(X.shape[1:], Y.shape[1])
        self.model_.compile(optimizer=self.make_optimizer(), loss=self.make_loss(Y))
        callbacks = [*self.callbacks(), epoch_progress(self.epochs, type(self).__name__)]
        validation = None
        if X_val is not None and len(X_val):
            validation = (self.prepare(X_val, fitting=False), np.asarray(Y_val, dtype=np.float32))
            callbacks.append(self.early_stopping(validation))
        # Last, so it sees what the callbacks before it added to the epoch's logs.
        callbacks += [mlflow_epoch_logger(), stops_between_batches()]
        with signals_deferred():  # Ctrl-C/SIGTERM act between batches (keras_callbacks)
            history = self.model_.fit(
                X,
                Y,
                epochs=self.epochs,
                batch_size=self.batch_size,
                validation_data=validation,
                callbacks=callbacks,
                verbose=self.verbose,
                shuffle=True,
            )
        self.epochs_trained_ = len(history.history["loss"])
        return self

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        X = self.prepare(X, fitting=False)
        with signals_deferred():  # a stop raised inside TensorFlow's call gets mangled
            out = [self.model_.predict_on_batch(X[i : i + 256]) for i in range(0, len(X), 256)]
        return np.concatenate(out) if out else np.zeros((0, self.model_.output_shape[-1]))

    # -- persistence: the network as a .keras file, the rest as JSON + arrays ------------
    NETWORK_FILE = "network.keras"

    def _save_fitted(self, directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if self.model_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: nothing to save")
        self.model_.save(Path(directory) / self.NETWORK_FILE)
        return {"epochs_trained_": int(self.epochs_trained_)}, self._input_arrays()

    def _load_fitted(
        self, fitted: Mapping[str, Any], arrays: Mapping[str, np.ndarray], directory: Path
    ) -> None:
        import keras

        self.epochs_trained_ = int(fitted["epochs_trained_"])
        self._restore_input_arrays(arrays)
        # safe_mode (Keras' default, spelt out so nothing turns it off) refuses Lambda layers
        # and other code a tampered file could carry. compile=False: the weighted loss is a
        # training-time closure, not needed to predict.
        with signals_deferred():  # a stop raised inside TensorFlow's calls gets mangled
            self.model_ = keras.models.load_model(
                Path(directory) / self.NETWORK_FILE, compile=False, safe_mode=True
            )

    def _input_arrays(self) -> dict[str, np.ndarray]:
        """Arrays ``prepare`` learnt when fitting (none unless a subclass standardises)."""
        return {}

    def _restore_input_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Set what ``_input_arrays`` saved."""


@register_classifier("mlp", format_version=1)
class MLPClassifier(KerasGenreClassifier):
    """The study's MLP: 500-250-250-100 ReLU, dropout 0.2, MaxNorm(3), SGD with the learning
    rate halved every 10 epochs, sigmoid outputs. Inputs are standardised first."""

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.9,
        hidden: tuple[int, ...] = (500, 250, 250, 100),
        dropout: float = 0.2,
        epochs: int = 100,
        batch_size: int = 64,
        patience: int = 10,
        positive_weighting: str = "none",
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(epochs, batch_size, patience, positive_weighting, seed, verbose)
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.hidden = tuple(hidden)
        self.dropout = dropout

    def prepare(self, X, fitting):
        X = np.asarray(X, dtype=np.float32)
        if fitting:
            self.mean_ = X.mean(axis=0)
            self.scale_ = X.std(axis=0) + 1e-6
        return (X - self.mean_) / self.scale_

    def _input_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "scale": self.scale_}

    def _restore_input_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.mean_, self.scale_ = arrays["mean"], arrays["scale"]

    def build_network(self, input_shape, n_outputs):
        import keras
        from keras import layers

        inputs = keras.Input(shape=input_shape)
        x = inputs
        for units in self.hidden:
            x = layers.Dense(
                units, activation="relu", kernel_constraint=keras.constraints.MaxNorm(3)
            )(x)
            x = layers.Dropout(self.dropout)(x)
        outputs = layers.Dense(n_outputs, activation="sigmoid")(x)
        return keras.Model(inputs, outputs, name="poster_mlp")

    def make_optimizer(self):
        import keras

        return keras.optimizers.SGD(self.learning_rate, momentum=self.momentum)

    def callbacks(self):
        import keras

        base = self.learning_rate
        return [keras.callbacks.LearningRateScheduler(lambda epoch: base * 0.5 ** (epoch // 10))]


@register_classifier("scratch_cnn", format_version=1)
class ScratchCNNClassifier(KerasGenreClassifier):
    """A CNN trained from scratch on resized RGB posters: 3 convolutions (5x5, 4x4, 3x3),
    ReLU, 2x2 max pooling after each, a dense head and sigmoid outputs."""

    def __init__(
        self,
        filters: tuple[int, int, int] = (32, 64, 64),
        dense_units: int = 128,
        dropout: float = 0.3,
        learning_rate: float = 1e-3,
        epochs: int = 30,
        batch_size: int = 32,
        patience: int = 5,
        positive_weighting: str = "none",
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(epochs, batch_size, patience, positive_weighting, seed, verbose)
        self.filters = tuple(filters)
        self.dense_units = dense_units
        self.dropout = dropout
        self.learning_rate = learning_rate

    def prepare(self, X, fitting):
        return np.asarray(X, dtype=np.float32) / 255.0

    def build_network(self, input_shape, n_outputs):
        import keras
        from keras import layers

        inputs = keras.Input(shape=input_shape)
        x = inputs
        for filters, kernel in zip(self.filters, (5, 4, 3), strict=True):
            x = layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
            x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
        x = layers.Dense(self.dense_units, activation="relu")(x)
        x = layers.Dropout(self.dropout)(x)
        outputs = layers.Dense(n_outputs, activation="sigmoid")(x)
        return keras.Model(inputs, outputs, name="poster_scratch_cnn")

    def make_optimizer(self):
        import keras

        return keras.optimizers.Adam(self.learning_rate)
