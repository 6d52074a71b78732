"""What every genre classifier provides, whatever its family.

A classifier maps a feature matrix (or image tensor) to one score in [0, 1] per genre, 0.5
being its natural cut; the decision rule (``posterml.evaluation.thresholds``) turns scores
into genres. ``fit`` receives validation data too, for early stopping where a family uses it.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import joblib
import numpy as np

_META = "classifier.json"


class GenreClassifier(ABC):
    """fit / predict_scores / save / load; scikit-learn style, multilabel (n, 19) targets."""

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

    def save(self, directory: Path) -> None:
        """Persist to ``directory``; Keras-backed classifiers override this."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, directory / "classifier.joblib")
        (directory / _META).write_text(json.dumps({"format": "joblib"}))


def load_classifier(directory: Path) -> GenreClassifier:
    """Load whatever ``GenreClassifier.save`` wrote into ``directory``."""
    directory = Path(directory)
    meta = json.loads((directory / _META).read_text())
    if meta["format"] == "joblib":
        return joblib.load(directory / "classifier.joblib")
    if meta["format"] == "keras":
        from posterml.models.keras_models import KerasGenreClassifier

        return KerasGenreClassifier.load_from(directory)
    raise ValueError(f"{directory}: unknown classifier format {meta['format']!r}")


def constant_columns(Y: np.ndarray) -> np.ndarray:
    """Genres whose training column is all 0 or all 1: no classifier can be fit on them."""
    Y = np.asarray(Y)
    return Y.min(axis=0) == Y.max(axis=0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))
