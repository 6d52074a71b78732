"""Featurizers: the one interface that turns posters into model inputs, in training and serving.

Every model family and the serving pyfunc hold a ``Featurizer``: ``fit`` on training images
only, ``transform_paths`` for files (streamed, cached where it pays, bad images skipped and
reported), ``transform_images`` for already-decoded images (serving, same math, no cache),
``save``/``load`` so a logged model transforms offline. ``load_featurizer`` reopens any of
them from the ``featurizer.json`` that ``save`` writes.

A saved featurizer is data: JSON, ``.npz`` arrays read with ``allow_pickle=False`` and a
``model.keras`` loaded in Keras' safe mode. Loading dispatches on the kind through a registry
that the featurizer classes fill themselves (``@register_featurizer``), so this module never
names its subclasses; it never opens a file named by the JSON, nor imports a module named by
it. ``posterml.features.loading`` imports every built-in kind.

This module imports no TensorFlow.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from PIL import Image

from posterml.arrays import read_json_object
from posterml.data.images import to_rgb
from posterml.features.image_stream import ExtractionResult

SPEC_FILE = "featurizer.json"
FORMAT_VERSION = 1

ImageLike = np.ndarray | Image.Image

_REGISTRY: dict[str, type[Featurizer]] = {}
_F = TypeVar("_F", bound="type[Featurizer]")


def register_featurizer(cls: _F) -> _F:
    """Class decorator: saved featurizers of ``cls.kind`` load as ``cls``."""
    kind = cls.kind
    if _REGISTRY.get(kind, cls) is not cls:
        raise ValueError(f"featurizer kind {kind!r} is already registered")
    _REGISTRY[kind] = cls
    return cls


def registered_featurizers() -> list[str]:
    """The kinds ``load_featurizer`` can read now, sorted (modules imported so far)."""
    return sorted(_REGISTRY)


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

    def summary(self) -> dict[str, float]:
        """Numbers learnt by ``fit`` worth logging as metrics (empty when nothing is learnt)."""
        return {}

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


def load_featurizer(directory: Path) -> Featurizer:
    """Reopen whichever featurizer ``save`` wrote into ``directory``.

    The kind read from disk only selects among the registered featurizer classes; import
    ``load_featurizer`` from ``posterml.features.loading`` to have every built-in kind.
    """
    kind = read_spec(directory).get("kind")
    if not isinstance(kind, str) or kind not in _REGISTRY:
        raise ValueError(
            f"{Path(directory) / SPEC_FILE}: unknown featurizer kind {kind!r}; registered: "
            f"{registered_featurizers()} (posterml.features.loading registers every built-in)"
        )
    return _REGISTRY[kind].load(directory)


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
