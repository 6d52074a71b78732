"""One-vs-rest RBF SVMs sharing one precomputed kernel.

``OneVsRestClassifier(SVC(kernel="rbf"))`` recomputes the same kernel for each of the 19
genres (13 min to fit 5,000 x 2,048 here). The pairwise squared distances do not depend on
C, gamma or the genre, so they are computed once per feature matrix and reused by every
genre and every Optuna trial; a trial costs one ``exp`` plus 19 SVC solves. The fitted model
keeps only the support vectors, so predicting needs no training matrix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.svm import SVC

from posterml.classifiers.base import (
    GenreClassifier,
    constant_columns,
    flatten_ragged,
    register_classifier,
    split_ragged,
)


def squared_distances(
    A: np.ndarray, B: np.ndarray, B_squared: np.ndarray | None = None
) -> np.ndarray:
    """Pairwise squared Euclidean distances (float64 accumulate, clipped at 0).

    ``B_squared``, ``(B * B).sum(1)`` in float64, when the caller keeps it (the support
    vectors' norms: the same numbers, not recomputed for every request).
    """
    A64, B64 = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    if B_squared is None:
        B_squared = (B64 * B64).sum(1)
    d = (A64 * A64).sum(1)[:, None] + B_squared[None, :] - 2.0 * A64 @ B64.T
    return np.maximum(d, 0.0)


class DistanceCache:
    """Memoises ``squared_distances`` by array content, shared across Optuna trials."""

    def __init__(self) -> None:
        self._store: dict[tuple[str, str], np.ndarray] = {}

    @staticmethod
    def _key(array: np.ndarray) -> str:
        array = np.ascontiguousarray(array)
        return hashlib.sha1(array.view(np.uint8).data).hexdigest() + str(array.shape)

    def get(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        key = (self._key(A), self._key(B))
        if key not in self._store:
            self._store[key] = squared_distances(A, B)
        return self._store[key]


@register_classifier("rbf_svm", format_version=1)
class RBFSVMClassifier(GenreClassifier):
    """19 RBF SVCs (one per genre) on a shared kernel; scores = sigmoid(decision function).

    ``gamma_scale`` multiplies sklearn's ``gamma="scale"`` (1 / (n_features * X.var())), so
    the search range is the same whatever the feature size. ``class_weight="balanced"``
    reweights each genre's positives, the study's "balanced" model.

    Saved as plain arrays: the support vectors, and per genre its duals, intercept and
    support indices (ragged, so stored flat with offsets); ``distance_cache`` is not saved.
    """

    _not_saved = ("distance_cache",)
    # The support vectors in float64 and their squared norms, made once per fitted or loaded
    # model (not saved): converting and squaring ~5,000 x 1,280 support vectors for every
    # request cost ~35 CPU ms of a one-poster request, 10x the rest of the classifier.
    _support64: tuple[np.ndarray, np.ndarray] | None = None

    def __init__(
        self,
        C: float = 1.0,
        gamma_scale: float = 1.0,
        class_weight: str | None = None,
        distance_cache: DistanceCache | None = None,
    ) -> None:
        self.C = C
        self.gamma_scale = gamma_scale
        self.class_weight = None if class_weight in (None, "none") else class_weight
        self.distance_cache = distance_cache

    def _distances(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        if self.distance_cache is not None:
            return self.distance_cache.get(A, B)
        return squared_distances(A, B)

    def fit(self, X, Y, X_val=None, Y_val=None, sample_weight=None) -> RBFSVMClassifier:
        """``sample_weight`` (n,) scales each poster's C, as in ``SVC.fit`` (on top of
        ``class_weight``): how the vintage benchmark up-weights a period's posters."""
        X, Y = np.asarray(X, dtype=np.float32), np.asarray(Y)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != (len(X),) or (sample_weight < 0).any():
                raise ValueError(f"sample_weight must be {len(X)} weights >= 0")
        self.gamma_ = self.gamma_scale / (X.shape[1] * X.var())
        kernel = np.exp(-self.gamma_ * self._distances(X, X))
        constant = constant_columns(Y)
        self.constant_scores_ = np.where(Y.mean(axis=0) > 0.5, 1.0, 0.0)
        support_sets, self.duals_, self.intercepts_ = [], [], []
        for j in range(Y.shape[1]):
            if constant[j]:
                support_sets.append(np.array([], dtype=int))
                self.duals_.append(np.array([]))
                self.intercepts_.append(None)
                continue
            svc = SVC(kernel="precomputed", C=self.C, class_weight=self.class_weight)
            svc.fit(kernel, Y[:, j], sample_weight=sample_weight)
            support_sets.append(svc.support_)
            # sklearn's binary decision is dual_coef @ K[sv] + intercept, positive = class 1.
            self.duals_.append(svc.dual_coef_[0].astype(np.float64))
            self.intercepts_.append(float(svc.intercept_[0]))
        # Keep the union of support vectors only; each genre indexes into it.
        union = np.unique(np.concatenate(support_sets)) if support_sets else np.array([], int)
        position = {int(row): k for k, row in enumerate(union)}
        self.support_index_ = [
            np.array([position[int(r)] for r in s], dtype=int) for s in support_sets
        ]
        self.support_vectors_ = X[union]
        self._support64 = None
        self.distance_cache = None  # the trial cache is a run's helper, not part of the model
        return self

    def _support_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """The float64 support vectors and their squared norms, computed on first use
        (float64 beside the saved float32: ~50 MB for 5,000 x 1,280)."""
        if self._support64 is None:
            sv64 = np.asarray(self.support_vectors_, dtype=np.float64)
            self._support64 = (sv64, (sv64 * sv64).sum(1))
        return self._support64

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        sv64, sv_squared = self._support_terms()
        kernel = np.exp(-self.gamma_ * squared_distances(X, sv64, sv_squared))
        out = np.empty((len(X), len(self.duals_)))
        for j, (dual, index, b) in enumerate(
            zip(self.duals_, self.support_index_, self.intercepts_, strict=True)
        ):
            if b is None:
                out[:, j] = 50.0 if self.constant_scores_[j] else -50.0
            else:
                out[:, j] = kernel[:, index] @ dual + b
        return out

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        return expit(self.decision_function(X))

    def _save_fitted(self, directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        duals, dual_offsets = flatten_ragged([np.asarray(d, np.float64) for d in self.duals_])
        index, index_offsets = flatten_ragged(
            [np.asarray(i, np.int64) for i in self.support_index_]
        )
        fitted = np.array([b is not None for b in self.intercepts_])
        intercepts = np.array([0.0 if b is None else b for b in self.intercepts_], np.float64)
        return {}, {
            "gamma": np.asarray(self.gamma_),  # 0-d, keeps its dtype (float32 from X.var())
            "constant_scores": self.constant_scores_,
            "support_vectors": self.support_vectors_,
            "duals": duals.astype(np.float64),
            "dual_offsets": dual_offsets,
            "support_index": index.astype(np.int64),
            "support_index_offsets": index_offsets,
            "intercepts": intercepts,
            "genre_fitted": fitted,
        }

    def _load_fitted(
        self, fitted: Mapping[str, Any], arrays: Mapping[str, np.ndarray], directory: Path
    ) -> None:
        self.gamma_ = arrays["gamma"][()]
        self.constant_scores_ = arrays["constant_scores"]
        self.support_vectors_ = arrays["support_vectors"]
        self._support64 = None
        self.duals_ = split_ragged(arrays["duals"], arrays["dual_offsets"], "duals")
        self.support_index_ = split_ragged(
            arrays["support_index"], arrays["support_index_offsets"], "support_index"
        )
        self.intercepts_ = [
            float(b) if ok else None
            for b, ok in zip(arrays["intercepts"], arrays["genre_fitted"], strict=True)
        ]
        n_genres, n_support = len(self.constant_scores_), len(self.support_vectors_)
        if not len(self.duals_) == len(self.support_index_) == len(self.intercepts_) == n_genres:
            raise ValueError("saved SVM: per-genre arrays disagree on the number of genres")
        for dual, index in zip(self.duals_, self.support_index_, strict=True):
            if len(dual) != len(index) or (
                len(index) and not 0 <= index.min() <= index.max() < n_support
            ):
                raise ValueError("saved SVM: support indices do not match the support vectors")
