"""Cut search on out-of-fold probabilities: the one place a genre's threshold is chosen.

Both tiers of the decision layer (``posterml.evaluation.decision``) cut one genre's ranking
of out-of-fold probabilities: ``genres`` at the F1-optimal cut among those precise enough,
``maybe`` at the highest cut that finds a given share of the genre's posters. Both respect a
rate cap (no genre predicted for more than a multiple of its positives), and both only cut
between distinct probabilities, so ties always fall on one side.
"""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 0.5
DEFAULT_RATE_CAP = 1.3
# A genre with fewer positives than this keeps DEFAULT_THRESHOLD: a cut tuned on a handful
# of positives predicts it for everyone.
DEFAULT_MIN_POSITIVES = 15
# A genre's maybe cut never flags more than 2x its positives: a genre the model barely sees
# (Music needs 10x for half its posters) would otherwise spend the whole budget.
MAYBE_RATE_CAP = 2.0
# Out-of-fold precision of a cut is shrunk towards the genre's rate as if the cut asserted
# this many more posters at that rate (as DECADE_PRIOR_STRENGTH does for decades): the top
# handful of a weak genre cannot clear the precision floor by luck.
PRECISION_PRIOR_STRENGTH = 20.0
# The cut of a genre that is never asserted (or never a maybe): above every probability,
# finite so that review priorities can still measure distances to it. JSON stores null.
NEVER = 2.0
_EPS = 1e-6


class Cuts:
    """One genre's candidate cuts on (out-of-fold) probabilities, top-down: ``cut[k]``
    predicts exactly the ``k + 1`` most probable rows, with ``true_pos[k]`` of them right.
    Only cuts between distinct values exist (ties fall on one side)."""

    def __init__(self, y: np.ndarray, proba: np.ndarray) -> None:
        y = np.asarray(y).astype(bool)
        order = np.argsort(-np.asarray(proba, dtype=np.float64), kind="stable")
        ranked = np.asarray(proba, dtype=np.float64)[order]
        self.positives = int(y.sum())
        self.n = len(y)
        self.true_pos = np.cumsum(y[order])
        self.predicted = np.arange(1, self.n + 1)
        self.distinct = np.r_[ranked[1:] != ranked[:-1], True]
        self.cut = np.r_[(ranked[:-1] + ranked[1:]) / 2, ranked[-1:] - _EPS]

    def allowed(self, rate_cap: float) -> np.ndarray:
        """Cuts predicting at most ``rate_cap`` x the positives."""
        cap = max(1, int(np.floor(rate_cap * self.positives)))
        return self.distinct & (self.predicted <= cap)

    def f1_cut(self, rate_cap: float, precision_floor: float = 0.0) -> float | None:
        """The F1-optimal allowed cut whose shrunk precision clears the floor (None: none)."""
        rate = self.positives / self.n
        precision = (self.true_pos + PRECISION_PRIOR_STRENGTH * rate) / (
            self.predicted + PRECISION_PRIOR_STRENGTH
        )
        allowed = self.allowed(rate_cap)
        if precision_floor > 0:
            allowed &= precision >= precision_floor
        if not allowed.any():
            return None
        f1 = 2 * self.true_pos / (self.predicted + self.positives)
        return float(self.cut[int(np.argmax(np.where(allowed, f1, -1.0)))])

    def recall_cut(self, recall: float, rate_cap: float) -> float | None:
        """The highest allowed cut finding ``recall`` of the positives, else the lowest
        allowed one (the cap binds); None when no cut is allowed."""
        allowed = self.allowed(rate_cap)
        if not allowed.any():
            return None
        reached = allowed & (self.true_pos >= recall * self.positives)
        k = int(np.argmax(reached)) if reached.any() else int(np.flatnonzero(allowed)[-1])
        return float(self.cut[k])


def tunable(y: np.ndarray, min_positives: int) -> bool:
    """Has the genre enough positives (and any negative) to choose a cut from its data?"""
    positives = int(np.asarray(y).astype(bool).sum())
    return positives >= max(min_positives, 1) and positives < len(y)


def asserted_cut(
    cuts: Cuts | None,
    rate_cap: float = DEFAULT_RATE_CAP,
    precision_floor: float = 0.0,
    default: float = DEFAULT_THRESHOLD,
) -> float:
    """A genre's ``genres`` cut: F1-optimal within the rate cap and the precision floor;
    ``NEVER`` when no cut clears the floor; ``default`` for a genre too rare to tune
    (``cuts`` None)."""
    if cuts is None:
        return default
    cut = cuts.f1_cut(rate_cap, precision_floor)
    if cut is None:
        return NEVER if precision_floor > 0 else default
    return cut


def maybe_cut(cuts: Cuts | None, recall: float, asserted: float) -> float:
    """A genre's ``maybe`` cut: the highest that finds ``recall`` of its positives within
    ``MAYBE_RATE_CAP``, never above its asserted cut (a genre over its cut but past
    ``max_genres`` becomes a maybe); ``NEVER`` for a genre too rare to tune."""
    found = None if cuts is None else cuts.recall_cut(recall, MAYBE_RATE_CAP)
    return NEVER if found is None else min(found, asserted)


def best_f1_threshold(
    y: np.ndarray,
    proba: np.ndarray,
    rate_cap: float = DEFAULT_RATE_CAP,
    min_positives: int = DEFAULT_MIN_POSITIVES,
    default: float = DEFAULT_THRESHOLD,
    precision_floor: float = 0.0,
) -> float:
    """``asserted_cut`` of one genre from its labels and probabilities; ``default`` when it
    has fewer than ``min_positives`` positives."""
    cuts = Cuts(y, proba) if tunable(y, min_positives) else None
    return asserted_cut(cuts, rate_cap, precision_floor, default)
