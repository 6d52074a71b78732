"""Featurizers: the one interface that turns posters into model inputs, in training and serving.

Every model family and the serving pyfunc hold a ``Featurizer``: ``fit`` on training images
only, ``transform_paths`` for files (streamed, cached where it pays, bad images skipped and
reported), ``transform_images`` for already-decoded images (serving, same math, no cache),
``save``/``load`` so a logged model transforms offline. ``load_featurizer`` reopens any of
them from the ``featurizer.json`` that ``save`` writes.

A saved featurizer is data: JSON, ``.npz`` arrays read with ``allow_pickle=False`` and a
``model.keras`` loaded in Keras' safe mode. Loading dispatches on the kind through a fixed
allow-list, never opens a file named by the JSON, and imports no module named by it (a
non-affine preprocessing must be the registered function of a known backbone).

This module imports no TensorFlow: keras loads only when a backbone model is built or loaded.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from PIL import Image

from posterml.arrays import read_json_object
from posterml.data.images import DECODER_VERSION, resize_rgb, to_rgb
from posterml.features.cache import FeatureCache, hash_files, namespace_for
from posterml.features.extract import ExtractionResult, iter_image_batches

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

SPEC_FILE = "featurizer.json"
MODEL_FILE = "model.keras"
FORMAT_VERSION = 1

ImageLike = np.ndarray | Image.Image


class Featurizer(ABC):
    """Turns poster files or decoded images into model inputs (features or pixels)."""

    kind: ClassVar[str]

    def fit(self, paths: list[str]) -> Featurizer:
        """Learn from TRAIN images only; a no-op for featurizers with nothing to learn."""
        return self

    @abstractmethod
    def transform_paths(self, paths: list[str]) -> ExtractionResult:
        """Features for image files, streamed with a progress bar; bad images are skipped."""

    @abstractmethod
    def transform_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        """Features for decoded RGB images (the serving path): same math, no cache.

        ``prepare_image`` outputs are valid inputs too, and give the same features.
        """

    @property
    @abstractmethod
    def image_size(self) -> tuple[int, int]:
        """(height, width) every image is resized to: the decoder may shrink towards it."""

    @abstractmethod
    def prepare_image(self, image: ImageLike) -> np.ndarray:
        """One decoded image resized as ``transform_images`` does, as a small uint8 array.

        A server can keep these instead of full-size images (224x224x3 is 150 kB, a 4000x6000
        photo 96 MB); ``transform_images`` of them equals ``transform_images`` of the images.
        """

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write everything needed to transform offline (no registry, network or keras cache)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> Featurizer:
        """Reopen a featurizer written by ``save``."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """What identifies this featurizer, for logging as MLflow params."""

    @property
    @abstractmethod
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one output row, e.g. ``(1280,)`` or ``(96, 64, 3)``."""

    def _write_spec(self, directory: Path, spec: dict[str, Any]) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        full = {"kind": self.kind, "format_version": FORMAT_VERSION, **spec}
        (directory / SPEC_FILE).write_text(json.dumps(full, indent=2) + "\n")
        return directory


def read_spec(directory: Path, kind: str | None = None) -> dict[str, Any]:
    """The ``featurizer.json`` in ``directory``, checked for kind and format version."""
    path = Path(directory) / SPEC_FILE
    spec = read_json_object(path, "no saved featurizer here")
    version = spec.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported featurizer format {spec.get('format_version')!r}")
    if kind is not None and spec.get("kind") != kind:
        raise ValueError(f"{path}: holds a {spec.get('kind')!r} featurizer, not {kind!r}")
    return spec


def saved_image_size(directory: Path) -> tuple[int, int]:
    """The (height, width) of a saved featurizer, read from its JSON alone (no model loaded).

    For code that decodes posters outside the model (Spark batch scoring checks each image
    on its own before the model sees the batch) and must decode them as the model will.
    """
    spec = read_spec(directory)
    size = spec.get("input_size", spec.get("size"))  # backbone featurizers / pixel ones
    if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int for v in size)):
        raise ValueError(f"{Path(directory) / SPEC_FILE}: no image size (got {size!r})")
    return size[0], size[1]


def load_featurizer(directory: Path) -> Featurizer:
    """Reopen whichever featurizer ``save`` wrote into ``directory``.

    The kind read from disk only selects among the featurizer classes listed here.
    """
    from posterml.features.pixels import PixelFeaturizer, PixelPCAFeaturizer

    kinds: dict[str, type[Featurizer]] = {
        cls.kind: cls for cls in (BackboneFeaturizer, PixelPCAFeaturizer, PixelFeaturizer)
    }
    kind = read_spec(directory).get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        raise ValueError(f"{Path(directory) / SPEC_FILE}: unknown featurizer kind {kind!r}")
    return kinds[kind].load(directory)


def as_rgb_image(image: ImageLike) -> Image.Image:
    """A decoded image as an RGB ``PIL.Image`` (uint8 arrays: (h, w), (h, w, 3) or (h, w, 4)).

    Conversions are ``decode_image``'s (``to_rgb``: alpha on white), so serving matches
    training.
    """
    if isinstance(image, Image.Image):
        return to_rgb(image)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(f"decoded images must be uint8 arrays, got {array.dtype}")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        return to_rgb(Image.fromarray(array))
    raise ValueError(f"expected an (h, w), (h, w, 3) or (h, w, 4) image, got shape {array.shape}")


def size_text(size: tuple[int, int]) -> str:
    """``(224, 224)`` -> ``"224x224"`` (height x width), the form used in params and names."""
    return f"{size[0]}x{size[1]}"


# --- preprocessing that survives save/load ----------------------------------------------------


def affine_preprocessing(preprocess: Callable[[np.ndarray], np.ndarray]) -> dict | None:
    """``preprocess`` as ``x @ matrix + bias`` over RGB channels, or None if it is not that.

    Standard CNN preprocessing (scale to [-1, 1], caffe BGR mean subtraction, mean/std) is a
    per-pixel affine map of the channels. Saving it as numbers makes a saved featurizer
    independent of the code that defined it, and is checked on random pixels before use.
    """
    probe = np.zeros((4, 2, 2, 3), dtype=np.uint8)
    for channel in range(3):
        probe[channel + 1, ..., channel] = 255
    try:
        out = np.asarray(preprocess(probe.copy()), dtype=np.float64)
        if out.shape != probe.shape:
            return None
        bias = out[0, 0, 0]
        matrix = (out[1:, 0, 0] - bias) / 255.0  # row k: effect of input channel k
        rng = np.random.default_rng(0)
        check = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
        expected = np.asarray(preprocess(check.copy()), dtype=np.float64)
    except Exception:  # anything odd: not a plain affine map, fall back to a reference
        return None
    got = check.astype(np.float64) @ matrix + bias
    scale = max(1.0, float(np.abs(expected).max()))
    if expected.shape != got.shape or not np.allclose(got, expected, rtol=1e-5, atol=1e-5 * scale):
        return None
    return {"type": "affine", "matrix": matrix.tolist(), "bias": bias.tolist()}


def _function_ref(function: Callable) -> str | None:
    """``"module:qualname"`` of a module-level function, else None."""
    module, name = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    return f"{module}:{name}" if module and name and "<" not in name else None


def registered_preprocessing() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The preprocessing functions of the registered backbones, by ``module:qualname``.

    The allow-list for saved ``"import"`` preprocessing: a saved featurizer may name one of
    these (code this process already trusts), never an arbitrary function to import.
    """
    from posterml.features.backbones import available_backbones, get_backbone

    functions = (get_backbone(name).preprocess for name in available_backbones())
    return {ref: f for f in functions if (ref := _function_ref(f)) is not None}


def preprocessing_spec(preprocess: Callable[[np.ndarray], np.ndarray]) -> dict:
    """How to rebuild ``preprocess`` offline: as an affine map, else as a registered
    backbone's preprocessing function (by name)."""
    affine = affine_preprocessing(preprocess)
    if affine is not None:
        return affine
    ref = _function_ref(preprocess)
    if ref is None or ref not in registered_preprocessing():
        raise ValueError(
            f"cannot save preprocessing {preprocess!r}: it is not an affine map of the RGB "
            "channels and not the module-level preprocessing function of a registered backbone"
        )
    return {"type": "import", "ref": ref}


def preprocessing_from_spec(spec: dict) -> Callable[[np.ndarray], np.ndarray]:
    """The inverse of ``preprocessing_spec``; a name outside the allow-list is refused."""
    if spec.get("type") == "affine":
        matrix = np.asarray(spec["matrix"], dtype=np.float32)
        bias = np.asarray(spec["bias"], dtype=np.float32)
        if matrix.shape != (3, 3) or bias.shape != (3,):
            raise ValueError("affine preprocessing needs a 3x3 matrix and 3 biases")

        def affine(x: np.ndarray) -> np.ndarray:
            flat = np.asarray(x, dtype=np.float32).reshape(-1, 3)
            return (flat @ matrix + bias).reshape(np.shape(x))

        return affine
    if spec.get("type") == "import":
        allowed = registered_preprocessing()
        if spec.get("ref") in allowed:
            return allowed[spec["ref"]]
        raise ValueError(
            f"preprocessing {spec.get('ref')!r} is not the preprocessing of a registered "
            f"backbone (known: {sorted(allowed)}); a saved model cannot name code to import"
        )
    raise ValueError(f"unknown preprocessing type {spec.get('type')!r}")


# --- inference speed: batch norms folded into convolutions ---------------------------------------

_FOLDABLE = ("Conv2D", "DepthwiseConv2D")


def _history_names(node: Any, found: list[str]) -> list[str]:
    """Names of the layers whose outputs a functional-config node reads."""
    if isinstance(node, dict):
        if "keras_history" in node:
            found.append(node["keras_history"][0])
        for value in node.values():
            _history_names(value, found)
    elif isinstance(node, list | tuple):
        for value in node:
            _history_names(value, found)
    return found


def _rename_history(node: Any, rename: dict[str, str]) -> None:
    """Point every read of a folded batch norm at its convolution instead (in place)."""
    if isinstance(node, dict):
        history = node.get("keras_history")
        if history is not None and history[0] in rename:
            node["keras_history"] = [rename[history[0]], *history[1:]]
        for value in node.values():
            _rename_history(value, rename)
    elif isinstance(node, list | tuple):
        for value in node:
            _rename_history(value, rename)


def _folded_weights(conv: Any, bn: Any) -> list[np.ndarray]:
    """Kernel and bias of ``conv`` followed by inference-mode ``bn``, as one convolution."""
    weights = conv.get_weights()
    kernel = weights[0].astype(np.float64)
    bias = weights[1].astype(np.float64) if len(weights) > 1 else 0.0
    mean = np.asarray(bn.moving_mean, dtype=np.float64)
    variance = np.asarray(bn.moving_variance, dtype=np.float64)
    gamma = np.asarray(bn.gamma, dtype=np.float64) if bn.scale else 1.0
    beta = np.asarray(bn.beta, dtype=np.float64) if bn.center else 0.0
    scale = gamma / np.sqrt(variance + bn.epsilon)  # per output channel
    if type(conv).__name__ == "DepthwiseConv2D":  # kernel (kh, kw, in, multiplier)
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:  # kernel (kh, kw, in, out)
        kernel = kernel * scale
    return [kernel.astype(np.float32), (beta + (bias - mean) * scale).astype(np.float32)]


def fold_batch_norms(model: keras.Model) -> keras.Model:
    """An equivalent functional model with each Conv -> BatchNorm pair merged into one conv.

    Keras runs an inference batch norm as a separate multiply and add over the whole
    activation map; folded into the conv's kernel and bias, TensorFlow fuses conv + bias +
    ReLU6 into one oneDNN kernel. EfficientNet-Lite0 on 2 cores: ~15 -> ~8 CPU ms per image
    (model alone 120 -> 225 images/s), features equal to ~3e-6 relative. Pairs are folded
    only when the conv is linear, feeds nothing else and the norm is over the channel axis;
    anything unexpected (not a functional model, a failed check) returns ``model`` unchanged.
    """
    import copy

    import keras

    try:
        config = copy.deepcopy(model.get_config())
        layers = {layer["name"]: layer for layer in config["layers"]}
        outputs = config["output_layers"]
        single_output = isinstance(outputs[0], str)
        reads = [
            name
            for layer in config["layers"]
            for name in _history_names(layer["inbound_nodes"], [])
        ]
        reads += [o[0] for o in ([outputs] if single_output else outputs)]
        fold: dict[str, str] = {}  # batch norm name -> conv name
        for layer in config["layers"]:
            sources = _history_names(layer["inbound_nodes"], [])
            if layer["class_name"] != "BatchNormalization" or len(sources) != 1:
                continue
            conv = layers[sources[0]]
            if (
                conv["class_name"] in _FOLDABLE
                and reads.count(conv["name"]) == 1
                and conv["config"].get("activation") == "linear"
                and conv["config"].get("data_format", "channels_last") == "channels_last"
                and layer["config"]["axis"] in (-1, 3, [-1], [3])
            ):
                fold[layer["name"]] = conv["name"]
        if not fold:
            return model
        for conv_name in fold.values():
            layers[conv_name]["config"]["use_bias"] = True
        config["layers"] = [layer for layer in config["layers"] if layer["name"] not in fold]
        _rename_history(config["layers"], fold)
        _rename_history(config["output_layers"], fold)
        if not single_output:
            config["output_layers"] = [[fold.get(o[0], o[0]), *o[1:]] for o in outputs]
        else:
            config["output_layers"] = [fold.get(outputs[0], outputs[0]), *outputs[1:]]
        folded = keras.Model.from_config(config)
        bn_of = {conv: bn for bn, conv in fold.items()}
        for layer in folded.layers:
            original = model.get_layer(layer.name)
            if layer.name in bn_of:
                layer.set_weights(_folded_weights(original, model.get_layer(bn_of[layer.name])))
            elif original.weights:
                layer.set_weights(original.get_weights())
        probe = np.random.default_rng(0).uniform(-1, 1, (2, *model.input_shape[1:]))
        expected = np.asarray(model(probe.astype(np.float32), training=False))
        got = np.asarray(folded(probe.astype(np.float32), training=False))
        scale = max(1.0, float(np.abs(expected).max()))
        if not np.allclose(got, expected, rtol=1e-3, atol=1e-4 * scale):
            log.warning("batch-norm folding changed %s's outputs; using it unfolded", model.name)
            return model
        return folded
    except Exception as exc:  # an exotic model: correctness first, speed second
        log.warning("not folding batch norms of %s: %s", getattr(model, "name", model), exc)
        return model


# --- pretrained CNN features ------------------------------------------------------------------


class BackboneFeaturizer(Featurizer):
    """Pooled features of a frozen pretrained CNN from the backbone registry, cached on disk.

    With ``cut`` (a layer name, e.g. ``"blocks_14_add"``) the output is that layer's feature
    map instead, (7, 7, 192) for Lite0: the frozen trunk under the top blocks that the
    fine-tuning family (``posterml.models.finetune``) trains.

    ``transform_paths`` hashes each file, reads the features of unchanged images from the
    ``FeatureCache`` and runs the model only on the rest, decoding the next batches in threads
    while the model runs. The Keras model is built once per instance, on first use.
    """

    kind = "backbone"

    def __init__(
        self,
        backbone: str,
        batch_size: int = 32,
        cache: bool = True,
        *,
        cache_root: Path | None = None,
        workers: int | None = None,
        progress: bool = True,
        cut: str = "",
    ) -> None:
        from posterml.features.backbones import get_backbone

        spec = get_backbone(backbone)
        self.cut = cut
        self.backbone = spec.name
        self.input_size = tuple(spec.input_size)
        self.feature_dim = int(spec.feature_dim)
        self.preprocessing_version = spec.preprocessing_version
        self.batch_size = batch_size
        self.cache = cache
        self.cache_root = cache_root
        self.workers = workers
        self.progress = progress
        self._preprocess = spec.preprocess
        self._build: Callable[[], keras.Model] = spec.build
        self._model: keras.Model | None = None
        self._predict_fn: Callable | None = None

    @property
    def feature_shape(self) -> tuple[int, ...]:
        if not self.cut:
            return (self.feature_dim,)
        return tuple(int(d) for d in self.model.output.shape[1:])

    @property
    def image_size(self) -> tuple[int, int]:
        return self.input_size

    def prepare_image(self, image: ImageLike) -> np.ndarray:
        return resize_rgb(as_rgb_image(image), self.input_size)

    @property
    def namespace(self) -> str:
        """The feature-cache namespace: backbone, input size, preprocessing and decoder
        versions (``efficientnet_lite0-224x224-v1-dec2``)."""
        version = f"{self.preprocessing_version}-dec{DECODER_VERSION}"
        if self.cut:
            version += f"-{self.cut}"
        return namespace_for(self.backbone, self.input_size, version)

    def feature_cache(self) -> FeatureCache:
        return FeatureCache(self.namespace, self.cache_root)

    @property
    def model(self) -> keras.Model:
        """The Keras model, built (or loaded) on first use."""
        if self._model is None:
            model = fold_batch_norms(self._build())
            if self.cut:
                import keras

                model = keras.Model(model.input, model.get_layer(self.cut).output)
            self._model = model
        return self._model

    def fit(self, paths: list[str]) -> BackboneFeaturizer:
        """Nothing to learn, but build the network now: an unavailable backbone (ResNet50
        offline) should fail before any image is decoded, not after the first batch."""
        _ = self.model
        return self

    def transform_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Model features for a uint8 (n, h, w, 3) batch."""
        if self._predict_fn is None:
            import tensorflow as tf

            model = self.model
            # A traced graph call: ~same speed as predict_on_batch without its per-call
            # overhead; XLA (jit_compile) measured ~25x slower on this CPU for depthwise convs.
            # The None batch dimension avoids a retrace for the last, smaller batch.
            self._predict_fn = tf.function(
                lambda x: model(x, training=False),
                input_signature=[tf.TensorSpec((None, *self.input_size, 3), tf.float32)],
            )
        inputs = np.ascontiguousarray(self._preprocess(pixels), dtype=np.float32)
        return np.asarray(self._predict_fn(inputs), dtype=np.float32)

    def transform_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        out = np.empty((len(images), *self.feature_shape), dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            pixels = np.stack([self.prepare_image(im) for im in chunk])
            out[start : start + len(chunk)] = self.transform_pixels(pixels)
        return out

    def transform_paths(self, paths: list[str]) -> ExtractionResult:
        paths = [str(p) for p in paths]
        shape = self.feature_shape
        out = np.empty((len(paths), *shape), dtype=np.float32)
        ok = np.zeros(len(paths), dtype=bool)
        cache = self.feature_cache() if self.cache else None
        keys: list[str | None] = hash_files(paths) if cache is not None else [None] * len(paths)
        if cache is not None:
            hits = cache.get_many(k for k in keys if k is not None)
            for i, key in enumerate(keys):
                vector = hits.get(key) if key is not None else None
                if vector is not None and vector.shape == shape:
                    out[i], ok[i] = vector, True
        n_cached = int(ok.sum())
        todo = np.flatnonzero(~ok)
        failures: list[tuple[str, str]] = []
        batches = iter_image_batches(
            [paths[i] for i in todo],
            self.input_size,
            batch_size=self.batch_size,
            workers=self.workers,
            progress=self.progress and len(todo) > 0,
            desc=f"{self.backbone} features ({n_cached} cached)",
            failures=failures,
        )
        for index, pixels in batches:
            rows = todo[index]
            out[rows] = self.transform_pixels(pixels)
            ok[rows] = True
            if cache is not None:
                cache.put_many({keys[r]: out[r] for r in rows if keys[r] is not None})
        n_computed = len(todo) - len(failures)
        log.info(
            "%s: %d computed, %d cached, %d unreadable",
            self.namespace,
            n_computed,
            n_cached,
            len(failures),
        )
        return ExtractionResult(out[ok], ok, failures, n_computed=n_computed, n_cached=n_cached)

    def params(self) -> dict[str, Any]:
        return {
            "featurizer": self.kind,
            "backbone": self.backbone,
            "input_size": size_text(self.input_size),
            "feature_dim": self.feature_dim,
            "preprocessing_version": self.preprocessing_version,
            "cut": self.cut or "pooled",
        }

    def save(self, directory: Path) -> None:
        directory = self._write_spec(
            directory,
            {
                "backbone": self.backbone,
                "input_size": list(self.input_size),
                "feature_dim": self.feature_dim,
                "preprocessing_version": self.preprocessing_version,
                "preprocessing": preprocessing_spec(self._preprocess),
                "cut": self.cut,
                "batch_size": self.batch_size,
                "cache": self.cache,
                "model_file": MODEL_FILE,
            },
        )
        self.model.save(directory / MODEL_FILE)

    @classmethod
    def load(cls, directory: Path) -> BackboneFeaturizer:
        """Reopen from the saved ``.keras`` model: no registry, weights download or keras cache."""
        import keras

        directory = Path(directory)
        spec = read_spec(directory, cls.kind)
        self = cls.__new__(cls)
        self.backbone = spec["backbone"]
        self.input_size = tuple(spec["input_size"])
        self.feature_dim = int(spec["feature_dim"])
        self.preprocessing_version = spec["preprocessing_version"]
        self.cut = str(spec.get("cut", ""))
        self.batch_size = int(spec["batch_size"])
        self.cache = bool(spec["cache"])
        self.cache_root, self.workers, self.progress = None, None, True
        self._preprocess = preprocessing_from_spec(spec["preprocessing"])
        if spec.get("model_file") != MODEL_FILE:  # never a path (or an .h5) chosen by the file
            raise ValueError(f"{directory / SPEC_FILE}: model_file must be {MODEL_FILE!r}")
        # Loaded now, not lazily: the directory may be a temporary artifact download.
        # safe_mode (Keras' default, spelt out so nothing turns it off) refuses Lambda layers.
        self._model = keras.models.load_model(directory / MODEL_FILE, compile=False, safe_mode=True)
        self._build = lambda: self._model
        self._predict_fn = None
        return self
