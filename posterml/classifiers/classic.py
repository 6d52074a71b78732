"""Classical baselines on pixel-PCA features: KNN, logistic regression, random forest.

Scores are per-genre probabilities. Genres constant in training (a rare genre absent from a
small train split) get a constant score instead of crashing the one-vs-rest fit.

Saved as arrays, never as serialised estimator objects: logistic regression as its scaler
statistics, coefficients and intercepts; KNN as its scaler statistics, the standardised
training matrix and labels (refit on load: KNN fitting only indexes them); the random forest
as its trees' node arrays, predicted by ``ForestArrays`` exactly as scikit-learn walks them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from posterml.classifiers.base import (
    GenreClassifier,
    constant_columns,
    register_classifier,
    split_ragged,
)

CLASSIC_KINDS = ("knn", "logreg", "random_forest")


@register_classifier("classic", format_version=1)
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

    # -- persistence ---------------------------------------------------------------------
    def _save_fitted(self, directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {
            "constant": np.asarray(self.constant_, dtype=bool),
            "constant_scores": np.asarray(self.constant_scores_, dtype=np.float64),
            "columns": np.asarray(self.columns_, dtype=np.int64),
        }
        if self.kind == "logreg":
            scalers = [est[0] for est in self.estimators_]
            models = [est[-1] for est in self.estimators_]
            arrays.update(_scaler_arrays(scalers))
            arrays["coef"] = np.stack([m.coef_[0] for m in models]) if models else np.empty(0)
            arrays["intercept"] = (
                np.stack([m.intercept_ for m in models])[:, 0] if models else np.empty(0)
            )
            arrays["classes"] = np.stack([m.classes_ for m in models]) if models else np.empty(0)
            arrays["n_iter"] = np.array([m.n_iter_[0] for m in models], np.int64)
        elif self.kind == "knn":
            scaler, knn = self.estimators_[0][0], self.estimators_[0][-1]
            arrays.update(_scaler_arrays([scaler]))
            classes = knn.classes_ if knn.outputs_2d_ else [knn.classes_]
            encoded = knn._y if knn.outputs_2d_ else knn._y[:, None]
            arrays["train_matrix"] = np.asarray(knn._fit_X)
            arrays["train_labels"] = np.stack(
                [np.asarray(c)[encoded[:, k]] for k, c in enumerate(classes)], axis=1
            )
        else:
            forest = self.estimators_[0]
            if not isinstance(forest, ForestArrays):  # freshly fitted, not loaded
                forest = ForestArrays.from_sklearn(forest)
            arrays.update(forest.arrays())
        return {}, arrays

    def _load_fitted(
        self, fitted: Mapping[str, Any], arrays: Mapping[str, np.ndarray], directory: Path
    ) -> None:
        self.constant_ = arrays["constant"].astype(bool)
        self.constant_scores_ = arrays["constant_scores"]
        self.columns_ = arrays["columns"]
        if self.kind == "logreg":
            self.estimators_ = []
            for k in range(len(self.columns_)):
                est = self._estimator()
                _restore_scaler(est[0], arrays, k)
                model = est[-1]
                model.coef_ = arrays["coef"][k : k + 1]  # dtypes as fitted (float32 for
                model.intercept_ = arrays["intercept"][k : k + 1]  # float32 features)
                model.classes_ = arrays["classes"][k]
                model.n_features_in_ = model.coef_.shape[1]
                model.n_iter_ = arrays["n_iter"][k : k + 1]
                self.estimators_.append(est)
        elif self.kind == "knn":
            est = self._estimator()
            _restore_scaler(est[0], arrays, 0)
            labels = arrays["train_labels"]
            # Fitting a KNN only stores and indexes the (already standardised) matrix.
            est[-1].fit(arrays["train_matrix"], labels[:, 0] if labels.shape[1] == 1 else labels)
            self.estimators_ = [est]
        else:
            self.estimators_ = [ForestArrays(arrays)]


def _scaler_arrays(scalers: list[StandardScaler]) -> dict[str, np.ndarray]:
    """The fitted statistics of ``StandardScaler``s, stacked (one row per scaler)."""
    if not scalers:
        return {name: np.empty(0) for name in ("scaler_mean", "scaler_scale", "scaler_var")}
    return {
        "scaler_mean": np.stack([s.mean_ for s in scalers]),
        "scaler_scale": np.stack([s.scale_ for s in scalers]),
        "scaler_var": np.stack([s.var_ for s in scalers]),
        "scaler_n_samples": np.array([int(s.n_samples_seen_) for s in scalers], np.int64),
    }


def _restore_scaler(scaler: StandardScaler, arrays: Mapping[str, np.ndarray], k: int) -> None:
    """Set row ``k`` of the saved statistics on an unfitted ``StandardScaler``."""
    scaler.mean_ = arrays["scaler_mean"][k]
    scaler.scale_ = arrays["scaler_scale"][k]
    scaler.var_ = arrays["scaler_var"][k]
    scaler.n_samples_seen_ = int(arrays["scaler_n_samples"][k])
    scaler.n_features_in_ = len(scaler.mean_)


class ForestArrays:
    """A fitted multi-output random forest as plain node arrays, predicting like sklearn.

    ``arrays`` holds every tree's nodes concatenated, numbered within their tree as sklearn
    does: ``tree_left``/``tree_right`` children (-1 at leaves), split ``tree_feature`` and
    ``tree_threshold``, ``tree_missing_left`` (where NaN goes), per-output class fractions
    ``tree_value`` (n_nodes, n_outputs, n_classes), and ``tree_offsets`` (tree t owns nodes
    offsets[t]:offsets[t+1]). ``predict_proba`` walks all trees at once, as
    ``RandomForestClassifier.predict_proba`` does: inputs as float32, ``x <= threshold`` goes
    left, leaf fractions averaged over the trees.
    """

    NAMES = (
        "tree_left",
        "tree_right",
        "tree_feature",
        "tree_threshold",
        "tree_missing_left",
        "tree_value",
        "tree_offsets",
    )

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._arrays = {name: np.asarray(arrays[name]) for name in self.NAMES}
        offsets = self._arrays["tree_offsets"].astype(np.int64)
        n_nodes = len(self._arrays["tree_left"])
        split_ragged(self._arrays["tree_left"], offsets, "tree_left")  # offsets partition nodes
        sizes = np.diff(offsets)
        if len(sizes) == 0 or (sizes < 1).any():
            raise ValueError("random forest: no trees, or a tree without nodes")
        value = self._arrays["tree_value"].astype(np.float64)
        if value.ndim != 3 or any(len(self._arrays[name]) != n_nodes for name in self.NAMES[:-1]):
            raise ValueError("random forest: node arrays of different lengths")
        children = np.stack([self._arrays["tree_left"], self._arrays["tree_right"]])
        children = children.astype(np.int64)
        leaf = children < 0
        first = np.repeat(offsets[:-1], sizes)  # global index of each node's tree root
        local = np.arange(n_nodes) - first
        # sklearn numbers children after their parent; requiring it also rules out cycles,
        # so the walk in predict_proba ends after at most one tree's size of steps.
        after_parent = (children > local) & (children < np.repeat(sizes, sizes))
        if ((leaf[0] != leaf[1]) | (~leaf & ~after_parent)).any():
            raise ValueError("random forest: a child outside its tree or not after its parent")
        self.roots = offsets[:-1]
        self.internal = ~leaf[0]
        self.left = np.where(leaf[0], -1, children[0] + first)
        self.right = np.where(leaf[1], -1, children[1] + first)
        self.feature = np.where(self.internal, self._arrays["tree_feature"].astype(np.int64), 0)
        self.threshold = self._arrays["tree_threshold"].astype(np.float64)
        self.missing_left = self._arrays["tree_missing_left"].astype(bool)
        self.value = value

    @classmethod
    def from_sklearn(cls, forest: RandomForestClassifier) -> ForestArrays:
        """The node arrays of a fitted ``RandomForestClassifier``."""
        trees = [est.tree_ for est in forest.estimators_]
        n_classes = np.atleast_1d(forest.n_classes_)
        width = int(n_classes.max())
        if (n_classes != width).any():
            raise ValueError("ForestArrays needs the same number of classes for every output")
        return cls(
            {
                "tree_left": np.concatenate([t.children_left for t in trees]),
                "tree_right": np.concatenate([t.children_right for t in trees]),
                "tree_feature": np.concatenate([t.feature for t in trees]),
                "tree_threshold": np.concatenate([t.threshold for t in trees]),
                "tree_missing_left": np.concatenate([t.missing_go_to_left for t in trees]),
                "tree_value": np.concatenate([t.value[:, :, :width] for t in trees]),
                "tree_offsets": np.cumsum([0] + [t.node_count for t in trees]),
            }
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The node arrays, numbered within each tree, as saved."""
        return dict(self._arrays)

    def predict_proba(self, X: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """Per output, (n, n_classes) class probabilities (one array if one output)."""
        X = np.asarray(X, dtype=np.float32)
        used = self.feature[self.internal]
        if len(used) and (used.min() < 0 or used.max() >= X.shape[1]):
            raise ValueError(f"random forest splits on a feature beyond the {X.shape[1]} given")
        rows = np.arange(len(X))[:, None]
        node = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        while True:
            active = self.internal[node]
            if not active.any():
                break
            x = X[rows, self.feature[node]]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            node = np.where(active, np.where(go_left, self.left[node], self.right[node]), node)
        total = np.zeros((len(X), *self.value.shape[1:]))
        for t in range(node.shape[1]):  # tree by tree, like sklearn's accumulation
            total += self.value[node[:, t]]
        total /= node.shape[1]
        outputs = [total[:, k, :] for k in range(total.shape[1])]
        return outputs[0] if len(outputs) == 1 else outputs
