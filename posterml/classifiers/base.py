"""What every genre classifier provides, whatever its family, and how it is saved as data.

A classifier maps a feature matrix (or image tensor) to one score in [0, 1] per genre, 0.5
being its natural cut; the decision rule (``posterml.evaluation.decision``) turns scores
into genres. ``fit`` receives validation data too, for early stopping where a family uses it.

A saved classifier is data, never code: a directory with ``classifier.json`` (its kind, the
format version, the constructor's hyperparameters and fitted scalars) and ``arrays.npz``
(fitted arrays, read with ``allow_pickle=False``), plus whatever plain files a family adds
(the Keras families: ``network.keras``, loaded in Keras' safe mode). No Python object is
deserialised and no class is looked up by a name read from disk: ``load_classifier``
dispatches on the ``kind`` through a registry that the classifier classes fill themselves
(``@register_classifier``), so a tampered model can at worst fail to load. This module never
names its subclasses: ``posterml.classifiers.loading`` imports every family, hence registers every
kind, and is where callers get ``load_classifier`` from.
"""

from __future__ import annotations

import inspect
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from posterml.arrays import load_arrays, read_json_object, save_arrays

META_FILE = "classifier.json"
ARRAYS_FILE = "arrays.npz"

_REGISTRY: dict[str, type[GenreClassifier]] = {}
_C = TypeVar("_C", bound="type[GenreClassifier]")


def register_classifier(kind: str, format_version: int = 1) -> Callable[[_C], _C]:
    """Class decorator: saved classifiers of ``kind`` load as this class.

    Bump ``format_version`` whenever what ``_save_fitted`` writes changes meaning; a file of
    another version then fails to load with a clear message instead of loading wrongly.
    """

    def register(cls: _C) -> _C:
        if kind in _REGISTRY and _REGISTRY[kind] is not cls:
            raise ValueError(f"classifier kind {kind!r} is already registered")
        cls.saved_kind = kind
        cls.format_version = format_version
        _REGISTRY[kind] = cls
        return cls

    return register


def registered_kinds() -> list[str]:
    """The kinds ``load_classifier`` can read now (their modules imported so far), sorted."""
    return sorted(_REGISTRY)


class GenreClassifier(ABC):
    """fit / predict_scores / save; scikit-learn style, multilabel (n, 19) targets.

    ``__init__`` only stores its arguments (they are the hyperparameters that ``save`` writes
    and ``load_classifier`` passes back); everything ``fit`` learns ends with ``_``.
    Subclasses implement ``_save_fitted`` / ``_load_fitted`` and register themselves.
    """

    # Set by ``@register_classifier``: the "kind" in classifier.json and its format version.
    # (Not "kind": ClassicClassifier has a hyperparameter of that name.)
    saved_kind: ClassVar[str]
    format_version: ClassVar[int]
    # Constructor arguments that are runtime helpers, not hyperparameters: never saved.
    _not_saved: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        X_val: np.ndarray | None = None,
        Y_val: np.ndarray | None = None,
    ) -> GenreClassifier:
        """Learn from training features ``X`` and multi-hot targets ``Y``."""

    @abstractmethod
    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """(n, 19) float scores in [0, 1]."""

    # -- persistence ---------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        """The constructor's argument names that ``save`` writes (scikit-learn's rule)."""
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD and name not in cls._not_saved
        ]

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters, i.e. the constructor arguments, as JSON-ready values."""
        return {name: _plain(getattr(self, name)) for name in self._param_names()}

    @abstractmethod
    def _save_fitted(self, directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """What ``fit`` learnt: JSON scalars and named numeric arrays (may write more files)."""

    @abstractmethod
    def _load_fitted(
        self, fitted: Mapping[str, Any], arrays: Mapping[str, np.ndarray], directory: Path
    ) -> None:
        """Restore what ``_save_fitted`` returned onto a freshly constructed instance."""

    def save(self, directory: Path) -> None:
        """Write ``classifier.json`` + ``arrays.npz`` (+ family files) into ``directory``."""
        cls = type(self)
        if _REGISTRY.get(getattr(cls, "saved_kind", None)) is not cls:
            # An unregistered subclass would otherwise save under its parent's kind and
            # silently load back as the parent.
            raise TypeError(f"{cls.__name__} cannot be saved: register it (@register_classifier)")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        fitted, arrays = self._save_fitted(directory)
        save_arrays(directory / ARRAYS_FILE, arrays)
        meta = {
            "kind": cls.saved_kind,
            "format_version": cls.format_version,
            "params": self.get_params(),
            "fitted": {key: _plain(value) for key, value in fitted.items()},
        }
        # Written last: a directory with a classifier.json holds a complete classifier.
        (directory / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    """``value`` as plain JSON data (numpy scalars -> Python numbers, tuples -> lists)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise TypeError(f"cannot save {value!r} ({type(value).__name__}) as a JSON value")


def read_meta(directory: Path) -> dict[str, Any]:
    """The ``classifier.json`` in ``directory``, checked for a known kind and version."""
    path = Path(directory) / META_FILE
    meta = read_json_object(path, "no saved classifier here")
    if "kind" not in meta and "format" in meta:
        raise ValueError(
            f"{path}: a classifier saved by an older posterml as serialised Python objects "
            f"({meta['format']!r} format); loading those can run arbitrary code from the file, "
            "so posterml no longer does. Retrain the model."
        )
    kinds = registered_kinds()
    kind = meta.get("kind")
    if kind not in kinds:
        raise ValueError(
            f"{path}: unknown classifier kind {kind!r}; known kinds: {kinds} "
            "(posterml.classifiers.loading registers every built-in kind)"
        )
    expected = _REGISTRY[kind].format_version
    version = meta.get("format_version")
    if type(version) is not int or version != expected:
        raise ValueError(
            f"{path}: {kind!r} classifier in format version {version!r}; "
            f"this posterml reads version {expected}"
        )
    for key in ("params", "fitted"):
        if not isinstance(meta.get(key), dict):
            raise ValueError(f"{path}: {key!r} must be a JSON object")
    return meta


def load_classifier(directory: Path) -> GenreClassifier:
    """Load whatever ``GenreClassifier.save`` wrote into ``directory`` (data only, no code)."""
    directory = Path(directory)
    meta = read_meta(directory)
    cls = _REGISTRY[meta["kind"]]
    path = directory / META_FILE
    params, names = meta["params"], set(cls._param_names())
    if set(params) != names:
        unknown, missing = sorted(set(params) - names), sorted(names - set(params))
        raise ValueError(
            f"{path}: {meta['kind']!r} hyperparameters do not match "
            f"(unknown: {unknown}, missing: {missing})"
        )
    arrays = load_arrays(directory / ARRAYS_FILE)
    try:
        model = cls(**params)
        model._load_fitted(meta["fitted"], arrays, directory)
    except KeyError as exc:
        raise ValueError(f"{path}: saved {meta['kind']!r} classifier lacks {exc}") from None
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"{path}: saved {meta['kind']!r} classifier is unusable: {exc}") from exc
    return model


def constant_columns(Y: np.ndarray) -> np.ndarray:
    """Genres whose training column is all 0 or all 1: no classifier can be fit on them."""
    Y = np.asarray(Y)
    return Y.min(axis=0) == Y.max(axis=0)


def flatten_ragged(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A list of 1-D arrays as one flat array and ``offsets`` (part i = flat[o[i]:o[i+1]])."""
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in parts])
    flat = np.concatenate(parts) if parts else np.array([])
    return flat, offsets


def split_ragged(flat: np.ndarray, offsets: np.ndarray, name: str = "array") -> list[np.ndarray]:
    """The inverse of ``flatten_ragged``; inconsistent offsets are a ``ValueError``."""
    offsets = np.asarray(offsets)
    if (
        offsets.ndim != 1
        or len(offsets) == 0
        or offsets[0] != 0
        or offsets[-1] != len(flat)
        or (np.diff(offsets) < 0).any()
    ):
        raise ValueError(f"{name}: offsets do not partition {len(flat)} values")
    return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
