"""The RBF SVM's head for training sets whose kernel does not fit in memory.

The exact head (``posterml.classifiers.svm``) needs an n x n kernel: 8 n^2 bytes, 20 GB at 50,000
posters. This one maps features through a Nystroem approximation of the same RBF kernel
(``n_components`` landmark posters, as ``sklearn.kernel_approximation.Nystroem``) and fits
one linear SVM per genre (squared hinge, liblinear) on the mapped features, so memory
grows as n x ``n_components`` and time about linearly in n. ``C``, ``gamma_scale`` and
``class_weight`` mean what they mean for the exact head (same gamma rule, same per-genre
weights), so a search over them reads the same whichever head a run uses.

Saved as plain arrays (landmarks, the m x m normalisation, per-genre weights): no pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.svm import LinearSVC

from posterml.classifiers.base import GenreClassifier, constant_columns, register_classifier
from posterml.classifiers.svm import squared_distances

CHUNK_ROWS = 4096  # rows mapped at a time: a float64 chunk x m kernel, not an n x m one


def nystroem_map(
    X: np.ndarray, gamma: float, n_components: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (a seeded sample of ``X``'s rows) and the normalisation that maps a kernel
    row against them to features: ``K_mm^-1/2`` by SVD, as scikit-learn's ``Nystroem``."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(X), min(n_components, len(X)), replace=False))
    landmarks = np.ascontiguousarray(X[rows], dtype=np.float32)
    U, S, Vt = np.linalg.svd(np.exp(-gamma * squared_distances(landmarks, landmarks)))
    normalisation = (U / np.sqrt(np.maximum(S, 1e-12))) @ Vt
    return landmarks, normalisation.astype(np.float32)


def nystroem_features(
    X: np.ndarray,
    landmarks: np.ndarray,
    normalisation: np.ndarray,
    gamma: float,
    dtype: type = np.float32,
) -> np.ndarray:
    """(n, m) features whose dot products approximate the RBF kernel; ``dtype`` float64
    is what liblinear takes without another copy."""
    X = np.asarray(X, dtype=np.float32)
    out = np.empty((len(X), normalisation.shape[0]), dtype=dtype)
    for start in range(0, len(X), CHUNK_ROWS):
        block = X[start : start + CHUNK_ROWS]
        kernel = np.exp(-gamma * squared_distances(block, landmarks)).astype(np.float32)
        out[start : start + CHUNK_ROWS] = kernel @ normalisation.T
    return out


@register_classifier("nystroem_svm", format_version=1)
class NystroemSVMClassifier(GenreClassifier):
    """19 linear SVMs (one per genre) on Nystroem features of the RBF kernel;
    scores = sigmoid(decision function), as the exact head's.

    ``n_components`` landmarks bound memory (m x m normalisation, n x m features);
    ``random_state`` picks them.
    """

    def __init__(
        self,
        C: float = 1.0,
        gamma_scale: float = 1.0,
        class_weight: str | None = None,
        n_components: int = 2000,
        random_state: int = 0,
    ) -> None:
        self.C = C
        self.gamma_scale = gamma_scale
        self.class_weight = None if class_weight in (None, "none") else class_weight
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X, Y, X_val=None, Y_val=None) -> NystroemSVMClassifier:
        X, Y = np.asarray(X, dtype=np.float32), np.asarray(Y)
        self.gamma_ = float(self.gamma_scale / (X.shape[1] * X.var()))
        self.landmarks_, self.normalisation_ = nystroem_map(
            X, self.gamma_, self.n_components, self.random_state
        )
        Z = nystroem_features(X, self.landmarks_, self.normalisation_, self.gamma_, np.float64)
        constant = constant_columns(Y)
        self.coef_ = np.zeros((Y.shape[1], Z.shape[1]), dtype=np.float64)
        self.intercept_ = np.where(Y.mean(axis=0) > 0.5, 50.0, -50.0)
        for j in np.flatnonzero(~constant):
            # The dual solver: 3x faster than the primal one at 20,000 posters (same optimum).
            svm = LinearSVC(C=self.C, class_weight=self.class_weight, dual=True, max_iter=5000)
            svm.fit(Z, Y[:, j])
            self.coef_[j], self.intercept_[j] = svm.coef_[0], svm.intercept_[0]
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        Z = nystroem_features(X, self.landmarks_, self.normalisation_, self.gamma_)
        return Z.astype(np.float64) @ self.coef_.T + self.intercept_

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        return expit(self.decision_function(X))

    def _save_fitted(self, directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"gamma": self.gamma_}, {
            "landmarks": self.landmarks_,
            "normalisation": self.normalisation_,
            "coef": self.coef_,
            "intercept": self.intercept_,
        }

    def _load_fitted(
        self, fitted: Mapping[str, Any], arrays: Mapping[str, np.ndarray], directory: Path
    ) -> None:
        self.gamma_ = float(fitted["gamma"])
        self.landmarks_ = arrays["landmarks"]
        self.normalisation_ = arrays["normalisation"]
        self.coef_, self.intercept_ = arrays["coef"], arrays["intercept"]
        m = len(self.landmarks_)
        if self.normalisation_.shape != (m, m) or self.coef_.shape[1:] != (m,):
            raise ValueError("saved Nystroem SVM: arrays disagree on the number of landmarks")
        if self.intercept_.shape != (len(self.coef_),):
            raise ValueError("saved Nystroem SVM: one intercept per genre expected")
