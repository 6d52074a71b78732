"""Classical baselines on pixel-PCA features: KNN, logistic regression, random forest.

Scores are per-genre probabilities. Genres constant in training (a rare genre absent from a
small train split) get a constant score instead of crashing the one-vs-rest fit.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from posterml.models.base import GenreClassifier, constant_columns

CLASSIC_KINDS = ("knn", "logreg", "random_forest")


class ClassicClassifier(GenreClassifier):
    """One scikit-learn estimator per genre (KNN and random forest handle multilabel
    natively; logistic regression is fit one-vs-rest)."""

    def __init__(
        self,
        kind: str = "logreg",
        n_neighbors: int = 15,
        C: float = 1.0,
        n_estimators: int = 200,
        max_depth: int | None = None,
        class_weight: str | None = None,
        seed: int = 0,
    ) -> None:
        if kind not in CLASSIC_KINDS:
            raise ValueError(f"classifier kind {kind!r}: use one of {CLASSIC_KINDS}")
        self.kind = kind
        self.n_neighbors = n_neighbors
        self.C = C
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.class_weight = None if class_weight in (None, "none") else class_weight
        self.seed = seed

    def _estimator(self):
        if self.kind == "knn":
            return make_pipeline(
                StandardScaler(), KNeighborsClassifier(self.n_neighbors, weights="distance")
            )
        if self.kind == "random_forest":
            return RandomForestClassifier(
                self.n_estimators,
                max_depth=self.max_depth,
                class_weight=self.class_weight,
                n_jobs=-1,
                random_state=self.seed,
            )
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000),
        )

    def fit(self, X, Y, X_val=None, Y_val=None) -> ClassicClassifier:
        Y = np.asarray(Y)
        self.constant_ = constant_columns(Y)
        self.constant_scores_ = Y.mean(axis=0)
        self.columns_ = np.flatnonzero(~self.constant_)
        if self.kind == "logreg":
            self.estimators_ = [self._estimator().fit(X, Y[:, j]) for j in self.columns_]
        else:  # multilabel-native: one estimator for all non-constant genres
            self.estimators_ = [self._estimator().fit(X, Y[:, self.columns_])]
        return self

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        scores = np.tile(self.constant_scores_, (len(X), 1)).astype(float)
        if self.kind == "logreg":
            for j, est in zip(self.columns_, self.estimators_, strict=True):
                scores[:, j] = est.predict_proba(X)[:, 1]
        else:
            probas = self.estimators_[0].predict_proba(X)
            if len(self.columns_) == 1:
                probas = [probas]
            for j, proba in zip(self.columns_, probas, strict=True):
                scores[:, j] = proba[:, 1]
        return scores
