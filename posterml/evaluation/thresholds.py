"""The decision rule: per-genre thresholds tuned on validation, optional top-1 fallback.

Every classifier emits scores in [0, 1] where 0.5 is its natural cut. A single 0.5 cut
under-predicts rare genres; tuning one threshold per genre on validation F1 is the cheap,
model-agnostic correction. The thresholds travel with the model so serving decides the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

DEFAULT_THRESHOLD = 0.5


def _best_f1_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The cut on ``scores`` maximising F1 for one genre (midpoint between neighbours)."""
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        return DEFAULT_THRESHOLD  # nothing to learn from validation
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_y = scores[order], y[order]
    true_pos = np.cumsum(sorted_y)
    predicted = np.arange(1, len(y) + 1)
    f1 = 2 * true_pos / (predicted + positives)
    # Only cut between distinct scores: ties must fall on the same side.
    distinct = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    best = int(np.argmax(np.where(distinct, f1, -1)))
    if best + 1 < len(sorted_scores):
        return float((sorted_scores[best] + sorted_scores[best + 1]) / 2)
    return float(sorted_scores[best] - 1e-6)


@dataclass
class DecisionRule:
    """Per-genre thresholds plus the optional "at least one genre" fallback."""

    thresholds: list[float] = field(default_factory=lambda: [DEFAULT_THRESHOLD] * 19)
    min_one_genre: bool = True

    @classmethod
    def tune(
        cls,
        y_val: np.ndarray,
        val_scores: np.ndarray,
        tune: bool = True,
        min_one_genre: bool = True,
    ) -> DecisionRule:
        """Thresholds maximising each genre's validation F1 (or all 0.5 when ``tune`` is off)."""
        n_genres = val_scores.shape[1]
        if not tune or len(y_val) == 0:
            return cls([DEFAULT_THRESHOLD] * n_genres, min_one_genre)
        cuts = [_best_f1_threshold(y_val[:, j], val_scores[:, j]) for j in range(n_genres)]
        return cls(cuts, min_one_genre)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Multi-hot predictions (uint8) from scores."""
        scores = np.asarray(scores)
        y_pred = (scores >= np.asarray(self.thresholds)).astype(np.uint8)
        if self.min_one_genre and len(scores):
            empty = y_pred.sum(axis=1) == 0
            y_pred[empty, np.argmax(scores[empty], axis=1)] = 1
        return y_pred

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DecisionRule:
        return cls(list(map(float, data["thresholds"])), bool(data["min_one_genre"]))
