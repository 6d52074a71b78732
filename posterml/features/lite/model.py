"""EfficientNet-Lite with its ImageNet weights: the graph of ``architecture``, the folded
weights of ``convert``.

The first build of a variant parses its torch checkpoint and caches the converted weights;
later builds load the cache. Nothing here imports torch, and keras only when a model is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from posterml.features.lite.architecture import INPUT_SIZE, LITE0, get_variant, lite_graph
from posterml.features.lite.checkpoint import CheckpointError
from posterml.features.lite.convert import converted_weights, inference_weights

if TYPE_CHECKING:
    import keras


def _assign_weights(model: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    """Set every weighted layer from ``weights``; any missing or extra entry is an error."""
    weighted = [layer for layer in model.layers if layer.weights]
    missing = [layer.name for layer in weighted if layer.name not in weights]
    if missing:
        raise CheckpointError(f"converted weights lack layers {missing}")
    unused = set(weights) - {layer.name for layer in weighted}
    if unused - {"fc"}:  # the classifier is legitimately unused without the top
        raise CheckpointError(f"converted weights have unknown layers {sorted(unused)}")
    for layer in weighted:
        layer.set_weights(weights[layer.name])  # raises on any shape mismatch


def build_efficientnet_lite(
    variant: str = LITE0, include_top: bool = False, input_size: int | None = None
) -> keras.Model:
    """EfficientNet-Lite with ImageNet weights, for inputs from ``architecture.PREPROCESSING``.

    Input: float32 NHWC RGB, ``input_size`` square (default: the variant's ImageNet size).
    Output: the 1280-d global-average-pooled features, or with ``include_top`` the 1000
    ImageNet logits (no softmax). An inference model: batch norms are folded into the
    convolutions, so it is not meant to be trained as a whole.
    """
    size = get_variant(variant).input_size if input_size is None else input_size
    model = lite_graph(variant, include_top, size)
    _assign_weights(model, inference_weights(converted_weights(variant=variant)))
    return model


def build_efficientnet_lite0(
    include_top: bool = False, input_size: int = INPUT_SIZE
) -> keras.Model:
    """EfficientNet-Lite0 (224 x 224 inputs by default); see ``build_efficientnet_lite``."""
    return build_efficientnet_lite(LITE0, include_top, input_size)
