"""The detail view's input: a poster's square crops at the backbone's full resolution.

Squashing a 2:3 poster into a 224x224 square at thumbnail size loses the small things that
mark a genre (helmets and planes, hats and horses, instruments). ``CropFeatures`` cuts the
poster into three squares along its long side (top, middle, bottom for an upright poster),
runs the same pretrained backbone on each and averages the pooled features: one vector per
poster in the backbone's feature space, which the detail view's own classifier learns from.
Vectors are cached by image sha256 like the whole poster's features.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from PIL import Image

from posterml.data.content import hash_files
from posterml.features.base import ImageLike, as_rgb_image
from posterml.features.cache import FeatureCache
from posterml.features.image_stream import ExtractionResult, map_decoded

log = logging.getLogger(__name__)

# Bump when the crops or their pooling change: cached vectors of another version are not read.
CROPS_VERSION = 1
N_CROPS = 3


def square_crops(image: Image.Image) -> list[Image.Image]:
    """Three squares along the long side (top, middle, bottom for an upright poster), each
    as wide as the short side; a square image gives one crop, itself."""
    width, height = image.size
    side = min(width, height)
    long = max(width, height)
    starts = sorted({0, (long - side) // 2, long - side})
    if height >= width:
        return [image.crop((0, top, side, top + side)) for top in starts]
    return [image.crop((left, 0, left + side, side)) for left in starts]


class CropFeatures:
    """Mean pooled features of a poster's square crops, from ``featurizer``'s backbone.

    ``featurizer`` is a pooled ``BackboneFeaturizer`` (no ``cut``): the crops are resized to
    its input size and go through its network, batched like whole posters.
    """

    def __init__(self, featurizer) -> None:
        self.featurizer = featurizer

    @property
    def namespace(self) -> str:
        """The cache namespace: the featurizer's own, then the crops' version."""
        return f"{self.featurizer.namespace}-crops{N_CROPS}-v{CROPS_VERSION}"

    def prepare_image(self, image: ImageLike) -> np.ndarray:
        """The crops of one decoded poster, resized for the backbone: uint8 (k, h, w, 3)."""
        crops = square_crops(as_rgb_image(image))
        return np.stack([self.featurizer.prepare_image(crop) for crop in crops])

    def transform_prepared(self, prepared: Sequence[np.ndarray]) -> np.ndarray:
        """One mean feature vector per poster, from ``prepare_image`` outputs."""
        if not len(prepared):
            return np.zeros((0, *self.featurizer.feature_shape), dtype=np.float32)
        counts = [len(p) for p in prepared]
        features = self.featurizer.transform_images(list(np.concatenate(prepared)))
        ends = np.cumsum(counts)
        return np.stack(
            [features[end - k : end].mean(axis=0) for k, end in zip(counts, ends, strict=True)]
        )

    def transform_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        """One mean feature vector per decoded poster."""
        return self.transform_prepared([self.prepare_image(im) for im in images])

    def transform_paths(self, paths: Sequence[str]) -> ExtractionResult:
        """Vectors for image files, cached by sha256; unreadable files are reported and
        skipped as ``BackboneFeaturizer.transform_paths`` does."""
        paths = [str(p) for p in paths]
        shape = self.featurizer.feature_shape
        cache = FeatureCache(self.namespace, self.featurizer.cache_root)
        use_cache = bool(self.featurizer.cache)
        keys = hash_files(paths) if use_cache else [None] * len(paths)
        out = np.empty((len(paths), *shape), dtype=np.float32)
        ok = np.zeros(len(paths), dtype=bool)
        if use_cache:
            hits = cache.get_many(k for k in keys if k is not None)
            for i, key in enumerate(keys):
                vector = hits.get(key)
                if vector is not None and vector.shape == shape:
                    out[i], ok[i] = vector, True
        n_cached = int(ok.sum())
        todo = np.flatnonzero(~ok)
        failures: list[tuple[str, str]] = []
        # A few posters per backbone batch: each poster is N_CROPS images.
        per_batch = max(1, self.featurizer.batch_size // N_CROPS)
        rows: list[int] = []
        pending: list[np.ndarray] = []

        def flush() -> None:
            out[rows] = self.transform_prepared(pending)
            ok[rows] = True
            if use_cache:
                cache.put_many({keys[r]: out[r] for r in rows if keys[r] is not None})
            rows.clear()
            pending.clear()

        decoded = map_decoded(
            [paths[i] for i in todo],
            self.prepare_image,
            min_size=self.featurizer.image_size,
            workers=self.featurizer.workers,
            progress=self.featurizer.progress and len(todo) > 0,
            desc=f"detail crops ({n_cached} cached)",
        )
        for item in decoded:
            if not item.ok:
                log.warning("skipping unreadable image %s: %s", item.path, item.reason)
                failures.append((item.path, item.reason))
                continue
            rows.append(int(todo[item.index]))
            pending.append(item.result)
            if len(pending) == per_batch:
                flush()
        if pending:
            flush()
        return ExtractionResult(
            out[ok], ok, failures, n_computed=len(todo) - len(failures), n_cached=n_cached
        )
