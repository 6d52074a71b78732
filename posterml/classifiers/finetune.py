"""Fine-tuning the top of a pretrained CNN on posters, on a CPU budget.

The frozen SVM and MLP see EfficientNet-Lite0's ImageNet features; this family lets the
network's last block and head convolution learn posters. Training all of Lite0 on 2 CPU
cores costs ~5 min per epoch of 2,800 posters (forward + backward over 224x224 images),
so the network is cut where the tuned part begins: the frozen trunk runs once per poster
(its (7, 7, 192) feature maps are cached like any features, ``BackboneFeaturizer(cut=...)``)
and each epoch only trains the top (~1M weights, ~25 s per epoch here, AVX2 CPU).

Augmentation acts on the cached feature maps: horizontal flips and small shifts, the cheap
analogues of flipped and shifted posters (a shift keeps the portrait layout, unlike a square
crop). Colour jitter needs pixels, hence a trunk pass per epoch: not done, for that cost.
The loss is made for imbalanced multi-label data: asymmetric loss (Ridnik et al. 2021,
which down-weights the many easy negatives of rare genres) or binary cross-entropy with
per-genre positive weights. Training stops early on validation F1.
"""

from __future__ import annotations

import numpy as np

from posterml.classifiers.base import register_classifier
from posterml.classifiers.keras_models import KerasGenreClassifier, _weighted_bce, positive_weights

LOSSES = ("asymmetric", "weighted_bce")
DEFAULT_CUT = "blocks_14_add"  # Lite0: the last MBConv block and the head conv are tuned


def pretrained_top(backbone: str, cut: str):
    """The part of ``backbone`` above layer ``cut`` (batch norms folded), as a new Keras
    model with its own copy of the ImageNet weights: feature map in, pooled features out."""
    import keras

    from posterml.features.backbone import BackboneFeaturizer

    full = BackboneFeaturizer(backbone, progress=False).model  # built, folded, uncut
    shared = keras.Model(full.get_layer(cut).output, full.output)
    top = keras.models.clone_model(shared)
    top.set_weights(shared.get_weights())
    return top


def asymmetric_loss(gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05):
    """Asymmetric loss (Ridnik et al., ICCV 2021): focusing with ``gamma_neg`` on negatives
    and a probability margin ``clip`` that discards very easy negatives entirely."""
    import keras
    from keras import ops

    def loss(y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        eps = keras.config.epsilon()
        p = ops.clip(y_pred, eps, 1 - eps)
        p_neg = ops.maximum(p - clip, 0.0)
        positive = y_true * ops.power(1 - p, gamma_pos) * ops.log(p)
        negative = (1 - y_true) * ops.power(p_neg, gamma_neg) * ops.log(ops.clip(1 - p_neg, eps, 1))
        return -ops.mean(positive + negative, axis=-1)

    return loss


def best_cut_f1(Y: np.ndarray, scores: np.ndarray) -> float:
    """Weighted F1 with each genre cut at its best threshold: what early stopping watches
    (optimistic, as any in-sample cut, but it ranks epochs, which is all it must do)."""
    from sklearn.metrics import f1_score

    from posterml.evaluation.cuts import best_f1_threshold

    cuts = [best_f1_threshold(Y[:, j], scores[:, j], min_positives=1) for j in range(Y.shape[1])]
    return float(f1_score(Y, scores >= np.asarray(cuts), average="weighted", zero_division=0))


def _f1_early_stopping(validation, patience: int):
    import keras

    X_val, Y_val = validation
    Y_val = np.asarray(Y_val).astype(np.uint8)

    class StopOnValidationF1(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.best, self.best_weights, self.waited = -1.0, None, 0

        def on_epoch_end(self, epoch, logs=None):
            scores = self.model.predict(X_val, batch_size=256, verbose=0)
            f1 = best_cut_f1(Y_val, scores)
            if logs is not None:
                # Logged per epoch under its own name: in-sample cuts make it optimistic, so
                # it must not mix with the trial's honest val_f1_weighted.
                logs["val_f1_best_cut"] = f1
            if f1 > self.best:
                self.best, self.best_weights, self.waited = f1, self.model.get_weights(), 0
            else:
                self.waited += 1
                if self.waited >= patience:
                    self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return StopOnValidationF1()


@register_classifier("finetune_top", format_version=1)
class FineTunedTopClassifier(KerasGenreClassifier):
    """The top of a pretrained backbone (above ``cut``) + dropout + a sigmoid layer, trained
    on cached feature maps with flip/shift augmentation and an imbalance-aware loss."""

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        cut: str = DEFAULT_CUT,
        learning_rate: float = 3e-4,
        dropout: float = 0.3,
        loss: str = "asymmetric",
        shift: float = 0.15,
        epochs: int = 15,
        batch_size: int = 64,
        patience: int = 3,
        positive_weighting: str = "sqrt",
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(epochs, batch_size, patience, positive_weighting, seed, verbose)
        self.backbone = backbone
        self.cut = cut
        self.learning_rate = learning_rate
        self.dropout = dropout
        self.loss = loss
        self.shift = shift

    def build_network(self, input_shape, n_outputs):
        import keras
        from keras import layers

        inputs = keras.Input(shape=input_shape, name="feature_map")
        x = layers.RandomFlip("horizontal", seed=self.seed)(inputs)
        if self.shift:
            x = layers.RandomTranslation(
                self.shift, self.shift, fill_mode="nearest", seed=self.seed
            )(x)
        x = pretrained_top(self.backbone, self.cut)(x)
        x = layers.Dropout(self.dropout)(x)
        outputs = layers.Dense(n_outputs, activation="sigmoid", name="genres")(x)
        return keras.Model(inputs, outputs, name="poster_finetuned_top")

    def make_optimizer(self):
        import keras

        return keras.optimizers.Adam(self.learning_rate)

    def make_loss(self, Y: np.ndarray):
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r}: use one of {LOSSES}")
        if self.loss == "asymmetric":
            return asymmetric_loss()
        return _weighted_bce(positive_weights(Y, self.positive_weighting))

    def early_stopping(self, validation):
        return _f1_early_stopping(validation, self.patience)
