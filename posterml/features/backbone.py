"""Pooled (or cut) features of a frozen pretrained CNN from the backbone registry, cached.

The backbone's build gives its inference model (batch norms folded) and its preprocessing
as data (``posterml.features.preprocessing``); both are saved with the featurizer, the model
as ``model.keras`` (loaded in Keras' safe mode), so a saved one needs neither the registry,
the network nor the weights cache. This module imports no TensorFlow: keras loads only when
a backbone model is built or loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from posterml.data.content import hash_files
from posterml.data.images import DECODER_VERSION, resize_rgb
from posterml.features.backbone_registry import get_backbone
from posterml.features.base import (
    SPEC_FILE,
    Featurizer,
    ImageLike,
    as_rgb_image,
    read_spec,
    register_featurizer,
    size_text,
)
from posterml.features.cache import FeatureCache, namespace_for
from posterml.features.image_stream import ExtractionResult, iter_image_batches
from posterml.features.preprocessing import Preprocessing
from posterml.io import signals_deferred

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"


@register_featurizer
class BackboneFeaturizer(Featurizer):
    """Pooled features of a frozen pretrained CNN from the backbone registry, cached on disk.

    With ``cut`` (a layer name, e.g. ``"blocks_14_add"``) the output is that layer's feature
    map instead, (7, 7, 192) for Lite0: the frozen trunk under the top blocks that the
    fine-tuning family (``posterml.classifiers.finetune``) trains.

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
        self.preprocessing = spec.preprocessing
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
        if (
            isinstance(image, np.ndarray)
            and image.dtype == np.uint8
            and image.shape == (*self.input_size, 3)
        ):
            return image  # already prepared: resizing to its own size only copies it
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
            with signals_deferred():  # TensorFlow inside: see transform_pixels
                model = self._build()
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
        """Model features for a uint8 (n, h, w, 3) batch.

        TensorFlow's C++ calls back into Python (even to build a ``TensorSpec``), and a
        Ctrl-C raised in such a callback comes out mangled (``posterml.io.signals_deferred``),
        so a stop waits for the batch to finish.
        """
        inputs = np.ascontiguousarray(self.preprocessing(pixels), dtype=np.float32)
        with signals_deferred():
            return np.asarray(self._graph_call()(inputs), dtype=np.float32)

    def _graph_call(self) -> Callable:
        """The model as a traced graph (a concrete function), traced on first use."""
        if self._predict_fn is None:
            import tensorflow as tf

            model = self.model
            # A traced graph call: ~same speed as predict_on_batch without its per-call
            # overhead; XLA (jit_compile) measured ~25x slower on this CPU for depthwise convs.
            # The None batch dimension avoids a retrace for the last, smaller batch. Traced
            # now, and called as its concrete function: no per-call signature matching
            # (~0.5 ms of a one-poster call).
            self._predict_fn = tf.function(
                lambda x: model(x, training=False),
                input_signature=[tf.TensorSpec((None, *self.input_size, 3), tf.float32)],
            ).get_concrete_function()
        return self._predict_fn

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
                "preprocessing": self.preprocessing.to_spec(),
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
        try:
            self.preprocessing = Preprocessing.from_spec(spec.get("preprocessing"))
        except ValueError as exc:
            raise ValueError(f"{directory / SPEC_FILE}: {exc}") from None
        if spec.get("model_file") != MODEL_FILE:  # never a path (or an .h5) chosen by the file
            raise ValueError(f"{directory / SPEC_FILE}: model_file must be {MODEL_FILE!r}")
        # Loaded now, not lazily: the directory may be a temporary artifact download.
        # safe_mode (Keras' default, spelt out so nothing turns it off) refuses Lambda layers.
        with signals_deferred():  # TensorFlow inside: see transform_pixels
            self._model = keras.models.load_model(
                directory / MODEL_FILE, compile=False, safe_mode=True
            )
        self._build = lambda: self._model
        self._predict_fn = None
        return self
