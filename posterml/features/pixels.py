"""Raw-pixel featurizers: grayscale pixels through PCA, and resized RGB for the scratch CNN.

``PixelPCAFeaturizer`` reproduces the original study (grayscale posters, pixels in [0, 1],
20 principal components) without ever holding the whole pixel matrix: batches stream into
``IncrementalPCA.partial_fit``. At the study's 750x500 a single poster is 375,000 floats, so
5,000 posters would need 15 GB; streaming keeps it to one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posterml.arrays import load_arrays, save_arrays
from posterml.data.images import resize_gray, resize_rgb
from posterml.features.base import (
    Featurizer,
    ImageLike,
    as_rgb_image,
    read_spec,
    register_featurizer,
    size_text,
)
from posterml.features.image_stream import ExtractionResult, iter_image_batches

PCA_FILE = "pca.npz"


def _empty_result(n: int, shape: tuple[int, ...], dtype: type) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((n, *shape), dtype=dtype), np.zeros(n, dtype=bool)


@register_featurizer
class PixelPCAFeaturizer(Featurizer):
    """Grayscale pixels resized to ``size`` = (h, w), scaled to [0, 1], projected on the top
    ``n_components`` principal components learnt from the training posters.

    ``fit`` streams batches of ``batch_size`` posters into ``IncrementalPCA.partial_fit``;
    ``summary()`` gives the share of variance kept, for logging (the study's 750x500 and 20
    components kept ~65% of the variance; the smaller default suits 2 cores).
    """

    kind = "pixel_pca"

    def __init__(
        self,
        size: tuple[int, int] = (150, 100),
        n_components: int = 20,
        batch_size: int = 256,
        *,
        workers: int | None = None,
        progress: bool = True,
    ) -> None:
        if batch_size < n_components:
            raise ValueError(
                f"batch_size ({batch_size}) must be >= n_components ({n_components}): "
                "IncrementalPCA needs at least n_components rows per partial_fit"
            )
        self.size = (int(size[0]), int(size[1]))
        self.n_components = int(n_components)
        self.batch_size = int(batch_size)
        self.workers = workers
        self.progress = progress
        self.mean_: np.ndarray | None = None
        self.components_: np.ndarray | None = None
        self.explained_variance_ratio_: np.ndarray | None = None
        self.n_samples_seen_ = 0
        self.fit_failures: list[tuple[str, str]] = []

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return (self.n_components,)

    def summary(self) -> dict[str, float]:
        """``{"pca_explained_variance": share of pixel variance the components keep (0..1)}``
        once fitted (loaded ones included), else empty."""
        if self.explained_variance_ratio_ is None:
            return {}
        return {"pca_explained_variance": float(np.sum(self.explained_variance_ratio_))}

    def _check_fitted(self) -> None:
        if self.components_ is None:
            raise RuntimeError("PixelPCAFeaturizer is not fitted: call fit(train_paths) first")

    def _pixels(self, gray: np.ndarray) -> np.ndarray:
        """(n, h, w) uint8 -> (n, h*w) float64 in [0, 1] (IncrementalPCA works in float64)."""
        return gray.reshape(len(gray), -1).astype(np.float64) / 255.0

    def fit(self, paths: list[str]) -> PixelPCAFeaturizer:
        """Learn the components from TRAIN posters, streamed; unreadable ones are skipped
        (listed in ``fit_failures``)."""
        from sklearn.decomposition import IncrementalPCA

        pca = IncrementalPCA(n_components=self.n_components)
        self.fit_failures = []
        # Rows wait in ``pending`` until a full batch can go *and* at least n_components rows
        # stay behind: the final remainder is then never smaller than n_components.
        pending: list[np.ndarray] = []
        n_pending = 0
        n_fitted = 0
        for _, gray in iter_image_batches(
            paths,
            self.size,
            batch_size=self.batch_size,
            workers=self.workers,
            gray=True,
            progress=self.progress,
            desc="pixel PCA fit",
            failures=self.fit_failures,
        ):
            pending.append(self._pixels(gray))
            n_pending += len(gray)
            while n_pending >= self.batch_size + self.n_components:
                rows = np.concatenate(pending)
                pca.partial_fit(rows[: self.batch_size])
                pending, n_pending = [rows[self.batch_size :]], len(rows) - self.batch_size
                n_fitted += self.batch_size
        if n_fitted + n_pending < self.n_components:
            raise ValueError(
                f"PCA with {self.n_components} components needs at least that many readable "
                f"images, got {n_fitted + n_pending}"
            )
        if n_pending:
            pca.partial_fit(np.concatenate(pending))
        self.mean_ = pca.mean_
        self.components_ = pca.components_
        self.explained_variance_ratio_ = pca.explained_variance_ratio_
        self.n_samples_seen_ = int(pca.n_samples_seen_)
        return self

    def _project(self, gray: np.ndarray) -> np.ndarray:
        # IncrementalPCA.transform without whitening, written out so a loaded featurizer
        # needs only two arrays (no pickled sklearn object tied to a sklearn version).
        return ((self._pixels(gray) - self.mean_) @ self.components_.T).astype(np.float32)

    def transform_paths(self, paths: list[str]) -> ExtractionResult:
        self._check_fitted()
        out, ok = _empty_result(len(paths), self.feature_shape, np.float32)
        failures: list[tuple[str, str]] = []
        for index, gray in iter_image_batches(
            paths,
            self.size,
            batch_size=self.batch_size,
            workers=self.workers,
            gray=True,
            progress=self.progress,
            desc="pixel PCA features",
            failures=failures,
        ):
            out[index] = self._project(gray)
            ok[index] = True
        return ExtractionResult(out[ok], ok, failures, n_computed=int(ok.sum()), n_cached=0)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size

    def prepare_image(self, image: ImageLike) -> np.ndarray:
        # A prepared (h, w) gray array comes back unchanged: L -> RGB -> L is exact and a
        # resize to the same size is a copy.
        return resize_gray(as_rgb_image(image), self.size)

    def transform_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        self._check_fitted()
        if not len(images):
            return np.empty((0, *self.feature_shape), dtype=np.float32)
        gray = np.stack([self.prepare_image(im) for im in images])
        return self._project(gray)

    def params(self) -> dict[str, Any]:
        return {
            "featurizer": self.kind,
            "input_size": size_text(self.size),
            "pca_components": self.n_components,
        }

    def save(self, directory: Path) -> None:
        self._check_fitted()
        directory = self._write_spec(
            directory,
            {
                "size": list(self.size),
                "n_components": self.n_components,
                "batch_size": self.batch_size,
                "n_samples_seen": self.n_samples_seen_,
            },
        )
        save_arrays(
            directory / PCA_FILE,
            {
                "mean": self.mean_,
                "components": self.components_,
                "explained_variance_ratio": self.explained_variance_ratio_,
            },
        )

    @classmethod
    def load(cls, directory: Path) -> PixelPCAFeaturizer:
        spec = read_spec(directory, cls.kind)
        self = cls(tuple(spec["size"]), spec["n_components"], spec["batch_size"])
        arrays = load_arrays(Path(directory) / PCA_FILE)  # allow_pickle=False
        self.mean_ = arrays["mean"]
        self.components_ = arrays["components"]
        self.explained_variance_ratio_ = arrays["explained_variance_ratio"]
        self.n_samples_seen_ = int(spec["n_samples_seen"])
        return self


@register_featurizer
class PixelFeaturizer(Featurizer):
    """Resized RGB pixels, uint8 (n, h, w, 3), for the CNN trained from scratch (no fit)."""

    kind = "pixels"

    def __init__(
        self,
        size: tuple[int, int] = (96, 64),
        batch_size: int = 64,
        *,
        workers: int | None = None,
        progress: bool = True,
    ) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.batch_size = int(batch_size)
        self.workers = workers
        self.progress = progress

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return (*self.size, 3)

    def transform_paths(self, paths: list[str]) -> ExtractionResult:
        out, ok = _empty_result(len(paths), self.feature_shape, np.uint8)
        failures: list[tuple[str, str]] = []
        for index, pixels in iter_image_batches(
            paths,
            self.size,
            batch_size=self.batch_size,
            workers=self.workers,
            progress=self.progress,
            desc="poster pixels",
            failures=failures,
        ):
            out[index] = pixels
            ok[index] = True
        return ExtractionResult(out[ok], ok, failures, n_computed=int(ok.sum()), n_cached=0)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size

    def prepare_image(self, image: ImageLike) -> np.ndarray:
        return resize_rgb(as_rgb_image(image), self.size)

    def transform_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        if not len(images):
            return np.empty((0, *self.feature_shape), dtype=np.uint8)
        return np.stack([self.prepare_image(im) for im in images])

    def params(self) -> dict[str, Any]:
        return {"featurizer": self.kind, "input_size": size_text(self.size)}

    def save(self, directory: Path) -> None:
        self._write_spec(directory, {"size": list(self.size), "batch_size": self.batch_size})

    @classmethod
    def load(cls, directory: Path) -> PixelFeaturizer:
        spec = read_spec(directory, cls.kind)
        return cls(tuple(spec["size"]), spec["batch_size"])
