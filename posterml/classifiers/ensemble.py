"""An ensemble of genre classifiers on the same features: a weighted average of their logits.

Why logits and one calibration: the members' scores live on different scales (an SVM's
decision values, an MLP's sigmoid outputs), so the average is taken in logit space with a
searched weight, and the decision layer then calibrates the blend once, out of fold, like
any single model. Averaging separately calibrated member probabilities instead needs a
second held-out set for the member calibrations and scored the same on ../shared/posters
(test weighted F1 .530 vs .528 for SVM + MLP, EfficientNet-Lite0 features).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.special import expit

from posterml.classifiers.base import GenreClassifier, load_classifier, register_classifier
from posterml.evaluation.decision import logit


@register_classifier("ensemble", format_version=1)
class EnsembleClassifier(GenreClassifier):
    """``members`` (unfitted classifiers) fitted on the same data; scores are
    sigmoid(sum_i w_i * logit(score_i)) with ``weights`` normalised to sum to 1."""

    # The members are saved as classifiers of their own, in member_<i>/ folders.
    _not_saved: ClassVar[tuple[str, ...]] = ("members",)

    def __init__(
        self,
        members: Sequence[GenreClassifier] | None = None,
        weights: Sequence[float] | None = None,
    ) -> None:
        self.members = members
        self.weights = weights

    def _normalised_weights(self) -> np.ndarray:
        members = list(self.members or [])
        weights = np.ones(len(members)) if self.weights is None else np.asarray(self.weights, float)
        if len(weights) != len(members) or len(members) == 0 or (weights < 0).any():
            raise ValueError(f"need one non-negative weight per member, got {self.weights!r}")
        if weights.sum() <= 0:
            raise ValueError("ensemble weights sum to 0")
        return weights / weights.sum()

    def fit(self, X, Y, X_val=None, Y_val=None) -> EnsembleClassifier:
        self.weights_ = self._normalised_weights()
        for member in self.members:
            member.fit(X, Y, X_val, Y_val)
        return self

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        blend = sum(
            w * logit(member.predict_scores(X))
            for w, member in zip(self.weights_, self.members, strict=True)
        )
        return expit(blend)

    def _save_fitted(self, directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        for i, member in enumerate(self.members):
            member.save(Path(directory) / f"member_{i}")
        return {"n_members": len(self.members)}, {"weights": np.asarray(self.weights_)}

    def _load_fitted(
        self, fitted: Mapping[str, Any], arrays: Mapping[str, np.ndarray], directory: Path
    ) -> None:
        n = int(fitted["n_members"])
        if not 1 <= n <= 16:
            raise ValueError(f"implausible number of ensemble members: {n}")
        self.members = [load_classifier(Path(directory) / f"member_{i}") for i in range(n)]
        self.weights_ = np.asarray(arrays["weights"], dtype=np.float64)
        if self.weights_.shape != (n,):
            raise ValueError(f"weights of shape {self.weights_.shape} for {n} members")
