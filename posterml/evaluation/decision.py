"""The decision layer: classifier scores -> calibrated per-genre probabilities -> genres.

1. **calibrate** each genre's score with Platt scaling, fitted on out-of-fold scores;
2. **threshold** each probability at its F1-optimal cut, never predicting a genre for more
   than ``rate_cap`` times its rate; a genre with fewer than ``min_positives`` examples
   keeps the cut 0.5 (a cut tuned on a handful of positives predicts it for everyone);
3. **decide** two tiers: ``genres`` (asserted: only at cuts whose out-of-fold precision,
   shrunk towards the genre's rate, clears ``precision_floor``; at most ``max_genres``, at
   least one with ``min_one_genre``) and ``maybe`` (genres worth a look, at most
   ``max_maybe`` per poster and ``maybe_per_poster`` on average, never an asserted genre);
4. optionally **know the period**: with release years, each genre's probability is shifted
   from its overall rate to its decade's (Saerens et al. 2002), with its own cuts.

The README's "decision layer" section gives the measurements behind each default.
"""

from __future__ import annotations

import numpy as np
from scipy import special
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, clone

from posterml.evaluation.cuts import (
    DEFAULT_MIN_POSITIVES,
    DEFAULT_RATE_CAP,
    DEFAULT_THRESHOLD,
    NEVER,
    Cuts,
    asserted_cut,
    maybe_cut,
    tunable,
)
from posterml.genres import GENRES, MAX_GENRES_PER_MOVIE

# Asserted genres must be right at least 30% of the time out of fold (the bar; the
# README gives the measurements behind it). 0 turns the floor off.
DEFAULT_PRECISION_FLOOR = 0.3
DEFAULT_MAX_MAYBE = 2
# Maybe genres per poster on average: 0.9 keeps the measured test average under 1.0.
DEFAULT_MAYBE_PER_POSTER = 0.9
# Asserted genres per poster at most: as many as a poster's labels hold (TMDb's first five,
# as the study kept).
DEFAULT_MAX_GENRES = MAX_GENRES_PER_MOVIE
# Folds of out-of-fold decisions (``cross_fit_predict``, the recipe's ``cv_folds``, audit).
DEFAULT_CV_FOLDS = 5
# The saved rule's format; 2 (no maybe tier, no precision floor) still loads.
FORMAT_VERSION = 3
_EPS = 1e-6
# Decade rates are shrunk towards the overall rate as if each decade had this many extra
# posters at the overall rate: a decade with 30 posters cannot claim a genre never occurs.
DECADE_PRIOR_STRENGTH = 20.0


def logit(p: np.ndarray) -> np.ndarray:
    """``scipy.special.logit`` with p clipped away from 0 and 1 (finite for any score)."""
    return special.logit(np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS))


def decade_of(years: np.ndarray) -> np.ndarray:
    """1987 -> 1980; the decade of each release year."""
    return (np.asarray(years, dtype=np.int64) // 10) * 10


# --------------------------------------------------------------------------- calibration
def platt_scaling(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of P(y=1 | x) = expit(slope * x + intercept), Platt 1999.

    Targets are smoothed to (N+ + 1) / (N+ + 2) and 1 / (N- + 2) so a genre with a handful of
    positives gets moderate, not extreme, probabilities. The slope is kept >= 0: scores that
    do not rise with the genre carry no information, and the probability becomes the rate.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    target = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    prior = (n_pos + 1.0) / (len(y) + 2.0)
    if n_pos == 0 or n_neg == 0 or np.ptp(x) == 0:
        return 0.0, float(logit(prior))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] * x + theta[1]
        # cross-entropy with soft targets, written stably: log(1 + e^z) - t z
        value = np.sum(np.logaddexp(0.0, z) - target * z)
        residual = expit(z) - target
        return float(value), np.array([residual @ x, residual.sum()])

    start = np.array([1.0 / (x.std() + _EPS), float(logit(prior))])
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0.0, None), (None, None)])
    slope, intercept = (float(v) for v in result.x)
    return slope, intercept


def shift_priors(proba: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Probabilities under new genre rates: logit(p') = logit(p) + logit(new) - logit(old).

    The binary form of Saerens et al. (2002), eq. 2.4: each genre's odds rescaled by the
    ratio of new to old prior odds. ``old``/``new`` broadcast against ``proba``.
    """
    return expit(logit(proba) + logit(new) - logit(old))


def estimate_priors_em(
    proba: np.ndarray, prior: np.ndarray, max_iter: int = 100, tol: float = 1e-6
) -> np.ndarray:
    """Genre rates of an unlabelled batch by Saerens et al.'s EM (their section 2.3).

    E-step: shift every poster's probabilities to the current estimate; M-step: the new
    estimate is their mean. Starts at the training rates ``prior``; per genre, independent.
    """
    proba = np.asarray(proba, dtype=np.float64)
    estimate = np.asarray(prior, dtype=np.float64).copy()
    for _ in range(max_iter):
        updated = np.clip(shift_priors(proba, prior, estimate).mean(axis=0), _EPS, 1 - _EPS)
        if np.max(np.abs(updated - estimate)) < tol:
            return updated
        estimate = updated
    return estimate


# --------------------------------------------------------------------------- the layer
class DecisionLayer(BaseEstimator):
    """Scores -> calibrated probabilities -> genres and maybe, fitted on out-of-fold scores.

    ``calibrate=False`` and ``tune_thresholds=False`` together give the study's plain rule:
    raw scores cut at 0.5, no maybe. Fitted state (``slopes_``, ``intercepts_``,
    ``thresholds_``, ``maybe_thresholds_``, ``prevalence_``, and with years
    ``decade_prevalence_``, ``year_thresholds_`` and ``year_maybe_thresholds_``) is plain
    numbers, saved as JSON with the model.
    """

    def __init__(
        self,
        calibrate: bool = True,
        tune_thresholds: bool = True,
        rate_cap: float = DEFAULT_RATE_CAP,
        min_positives: int = DEFAULT_MIN_POSITIVES,
        min_one_genre: bool = True,
        max_genres: int = DEFAULT_MAX_GENRES,
        precision_floor: float = DEFAULT_PRECISION_FLOOR,
        max_maybe: int = DEFAULT_MAX_MAYBE,
        maybe_per_poster: float = DEFAULT_MAYBE_PER_POSTER,
    ) -> None:
        self.calibrate = calibrate
        self.tune_thresholds = tune_thresholds
        self.rate_cap = rate_cap
        self.min_positives = min_positives
        self.min_one_genre = min_one_genre
        self.max_genres = max_genres
        self.precision_floor = precision_floor
        self.max_maybe = max_maybe
        self.maybe_per_poster = maybe_per_poster

    # -- fitting -----------------------------------------------------------------------
    def fit(
        self, scores: np.ndarray, Y: np.ndarray, years: np.ndarray | None = None
    ) -> DecisionLayer:
        """Learn calibration, genre rates and both tiers' cuts from (out-of-fold) scores."""
        scores, Y = np.asarray(scores, dtype=np.float64), np.asarray(Y).astype(np.uint8)
        n_genres = scores.shape[1]
        if self.calibrate:
            fitted = [platt_scaling(logit(scores[:, j]), Y[:, j]) for j in range(n_genres)]
            self.slopes_ = [s for s, _ in fitted]
            self.intercepts_ = [b for _, b in fitted]
        else:
            self.slopes_, self.intercepts_ = [1.0] * n_genres, [0.0] * n_genres
        self.prevalence_ = ((Y.sum(axis=0) + 1.0) / (len(Y) + 2.0)).tolist()
        proba = self._calibrated(scores)
        self.thresholds_, self.maybe_thresholds_ = self._tune(proba, Y)
        self.decade_prevalence_: dict[str, list[float]] = {}
        self.year_thresholds_ = self.year_maybe_thresholds_ = None
        if years is not None and len(years):
            decades = decade_of(years)
            overall = np.asarray(self.prevalence_)
            for decade in np.unique(decades):
                rows = decades == decade
                rates = (Y[rows].sum(axis=0) + DECADE_PRIOR_STRENGTH * overall) / (
                    rows.sum() + DECADE_PRIOR_STRENGTH
                )
                self.decade_prevalence_[str(int(decade))] = rates.tolist()
            shifted = self._shift_to_years(proba, years)
            self.year_thresholds_, self.year_maybe_thresholds_ = self._tune(shifted, Y)
        return self

    def _tune(self, proba: np.ndarray, Y: np.ndarray) -> tuple[list[float], list[float]]:
        """(asserted cuts, maybe cuts) per genre on these probabilities."""
        n_genres = proba.shape[1]
        if not self.tune_thresholds:
            return [DEFAULT_THRESHOLD] * n_genres, [NEVER] * n_genres
        cuts = [
            Cuts(Y[:, j], proba[:, j]) if tunable(Y[:, j], self.min_positives) else None
            for j in range(n_genres)
        ]
        asserted = [asserted_cut(c, self.rate_cap, self.precision_floor) for c in cuts]
        return asserted, self._maybe_cuts(proba, cuts, asserted)

    def _maybe_cuts(self, proba: np.ndarray, cuts: list, asserted: list[float]) -> list[float]:
        """Maybe cuts at the highest common recall whose tier averages at most
        ``maybe_per_poster`` per poster on ``proba`` (bisection: more recall, more maybe)."""
        never = [NEVER] * len(cuts)
        if self.max_maybe <= 0 or self.maybe_per_poster <= 0 or not len(proba):
            return never
        genres = self.decide(proba, np.asarray(asserted))

        def at(recall: float) -> list[float]:
            return [maybe_cut(c, recall, a) for c, a in zip(cuts, asserted, strict=True)]

        def per_poster(recall: float) -> float:
            return float(self.decide_maybe(proba, genres, np.asarray(at(recall))).sum(1).mean())

        if per_poster(1.0) <= self.maybe_per_poster:
            return at(1.0)
        low, high = 0.0, 1.0
        for _ in range(12):  # recall to within 1/4096
            middle = (low + high) / 2
            if per_poster(middle) <= self.maybe_per_poster:
                low = middle
            else:
                high = middle
        return at(low) if per_poster(low) <= self.maybe_per_poster else never

    # -- probabilities -------------------------------------------------------------------
    def _calibrated(self, scores: np.ndarray) -> np.ndarray:
        z = logit(scores) * np.asarray(self.slopes_) + np.asarray(self.intercepts_)
        return expit(z)

    def decade_priors(self, years: np.ndarray) -> np.ndarray:
        """Each row's genre rates for its decade (overall rates for decades never seen)."""
        overall = np.asarray(self.prevalence_)
        table = {int(k): np.asarray(v) for k, v in self.decade_prevalence_.items()}
        return np.stack([table.get(int(d), overall) for d in decade_of(years)]).reshape(
            len(years), len(overall)
        )

    def _shift_to_years(self, proba: np.ndarray, years: np.ndarray) -> np.ndarray:
        return shift_priors(proba, np.asarray(self.prevalence_), self.decade_priors(years))

    def _has_year(self, years: np.ndarray | None, n: int) -> np.ndarray:
        """Rows whose year falls in a decade the layer learnt rates for: only those are
        shifted and use the year-aware thresholds; any other row is decided as without."""
        if years is None or not self.decade_prevalence_:
            return np.zeros(n, dtype=bool)
        years = np.asarray(years, dtype=np.float64)
        known = np.isfinite(years) & (years > 0)
        seen = {int(d) for d in self.decade_prevalence_}
        decades = decade_of(np.where(known, years, 0))
        return known & np.isin(decades, list(seen))

    def predict_proba(self, scores: np.ndarray, years: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities, shifted to the decade's rates where a year is given."""
        proba = self._calibrated(np.asarray(scores, dtype=np.float64))
        known = self._has_year(years, len(proba))
        if known.any():
            proba[known] = self._shift_to_years(proba[known], np.asarray(years)[known])
        return proba

    def thresholds_for(
        self, n: int, years: np.ndarray | None = None, tier: str = "genres"
    ) -> np.ndarray:
        """(n, genres) cuts of ``tier`` (``genres`` or ``maybe``): the year-aware set on
        rows that carry a year."""
        if tier not in ("genres", "maybe"):
            raise ValueError(f"tier must be 'genres' or 'maybe', got {tier!r}")
        plain, aware = (
            (self.thresholds_, self.year_thresholds_)
            if tier == "genres"
            else (self.maybe_thresholds_, self.year_maybe_thresholds_)
        )
        cuts = np.tile(np.asarray(plain, dtype=np.float64), (n, 1))
        known = self._has_year(years, n)
        if known.any() and aware is not None:
            cuts[known] = np.asarray(aware)
        return cuts

    # -- decisions -------------------------------------------------------------------------
    def decide(self, proba: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        """Multi-hot asserted genres: over threshold, at most ``max_genres``; with
        ``min_one_genre`` a poster with none gets its most probable genre among those that
        can be asserted at all (a genre cut at ``NEVER`` is never asserted)."""
        proba = np.asarray(proba)
        thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), proba.shape)
        y_pred = (proba >= thresholds).astype(np.uint8)
        if len(proba) == 0:
            return y_pred
        if self.max_genres and self.max_genres < proba.shape[1]:
            rank = np.argsort(np.argsort(-proba, axis=1, kind="stable"), axis=1, kind="stable")
            y_pred[rank >= self.max_genres] = 0
        if self.min_one_genre:
            assertable = thresholds <= 1.0
            empty = (y_pred.sum(axis=1) == 0) & assertable.any(axis=1)
            best = np.argmax(np.where(assertable, proba, -1.0)[empty], axis=1)
            y_pred[np.flatnonzero(empty), best] = 1
        return y_pred

    def decide_maybe(
        self, proba: np.ndarray, genres: np.ndarray, thresholds: np.ndarray
    ) -> np.ndarray:
        """Multi-hot maybe genres: over their maybe cut, not asserted, at most ``max_maybe``
        per poster, the most probable kept."""
        proba = np.asarray(proba, dtype=np.float64)
        maybe = np.zeros(proba.shape, dtype=np.uint8)
        if len(proba) == 0 or self.max_maybe <= 0:
            return maybe
        candidate = (proba >= thresholds) & (np.asarray(genres) == 0)
        keep = min(self.max_maybe, proba.shape[1])
        top = np.argsort(-np.where(candidate, proba, -1.0), axis=1, kind="stable")[:, :keep]
        rows = np.arange(len(proba))[:, None]
        maybe[rows, top] = candidate[rows, top]
        return maybe

    def predict(self, scores: np.ndarray, years: np.ndarray | None = None) -> np.ndarray:
        """Multi-hot asserted genres (``predict_tiers`` gives maybe too)."""
        proba = self.predict_proba(scores, years)
        return self.decide(proba, self.thresholds_for(len(proba), years))

    def predict_tiers(
        self, scores: np.ndarray, years: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probabilities, multi-hot genres, multi-hot maybe)."""
        proba = self.predict_proba(scores, years)
        genres = self.decide(proba, self.thresholds_for(len(proba), years))
        maybe = self.decide_maybe(proba, genres, self.thresholds_for(len(proba), years, "maybe"))
        return proba, genres, maybe

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Settings and fitted numbers, with genre names, for ``decision_rule.json``.

        A cut of ``NEVER`` is written as null: the genre is never in that tier."""
        genres = list(GENRES)

        def named(cuts: list[float] | None) -> dict | None:
            if cuts is None:
                return None
            return {g: (None if c >= NEVER else c) for g, c in zip(genres, cuts, strict=True)}

        return {
            "format_version": FORMAT_VERSION,
            "settings": self.get_params(),
            "genres": genres,
            "calibration": {
                g: {"slope": s, "intercept": b}
                for g, s, b in zip(genres, self.slopes_, self.intercepts_, strict=True)
            },
            "thresholds": named(self.thresholds_),
            "maybe_thresholds": named(self.maybe_thresholds_),
            "prevalence": dict(zip(genres, self.prevalence_, strict=True)),
            "year_thresholds": named(self.year_thresholds_),
            "year_maybe_thresholds": named(self.year_maybe_thresholds_),
            "decade_prevalence": {
                decade: dict(zip(genres, rates, strict=True))
                for decade, rates in self.decade_prevalence_.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict) -> DecisionLayer:
        """The layer of a ``to_dict``. Format 2 (before the tiers) loads with no maybe and
        no precision floor, deciding its genres exactly as it did."""
        version = data.get("format_version")
        if version not in (2, FORMAT_VERSION):
            raise ValueError(f"unsupported decision format {version!r}")
        genres = list(data["genres"])
        if genres != list(GENRES):
            raise ValueError("decision layer was fitted on a different genre list")
        settings = data["settings"]
        layer = cls(
            calibrate=bool(settings["calibrate"]),
            tune_thresholds=bool(settings["tune_thresholds"]),
            rate_cap=float(settings["rate_cap"]),
            min_positives=int(settings["min_positives"]),
            min_one_genre=bool(settings["min_one_genre"]),
            max_genres=int(settings["max_genres"]),
            precision_floor=float(settings.get("precision_floor", 0.0)),
            max_maybe=int(settings.get("max_maybe", 0)),
            maybe_per_poster=float(settings.get("maybe_per_poster", 0.0)),
        )

        def cuts(key: str) -> list[float] | None:
            table = data.get(key)
            if not table:
                return None
            return [NEVER if table[g] is None else float(table[g]) for g in genres]

        layer.slopes_ = [float(data["calibration"][g]["slope"]) for g in genres]
        layer.intercepts_ = [float(data["calibration"][g]["intercept"]) for g in genres]
        layer.thresholds_ = cuts("thresholds")
        layer.maybe_thresholds_ = cuts("maybe_thresholds") or [NEVER] * len(genres)
        layer.prevalence_ = [float(data["prevalence"][g]) for g in genres]
        layer.year_thresholds_ = cuts("year_thresholds")
        layer.year_maybe_thresholds_ = cuts("year_maybe_thresholds")
        if layer.year_thresholds_ is not None and layer.year_maybe_thresholds_ is None:
            layer.year_maybe_thresholds_ = [NEVER] * len(genres)
        layer.decade_prevalence_ = {
            str(int(decade)): [float(rates[g]) for g in genres]
            for decade, rates in (data.get("decade_prevalence") or {}).items()
        }
        return layer


def cross_fit_predict(
    layer: DecisionLayer,
    scores: np.ndarray,
    Y: np.ndarray,
    years: np.ndarray | None = None,
    n_folds: int = DEFAULT_CV_FOLDS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Honest (probabilities, genres, maybe) for scored rows: each fold is decided by a layer
    fitted on the other folds, so no poster's own label sets its threshold.

    Used for validation metrics, where tuning and scoring on the same rows would flatter
    the model (thresholds tuned on the rows they score gain ~.02 F1 by luck).
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    scores, Y = np.asarray(scores), np.asarray(Y)
    proba = np.zeros(scores.shape, dtype=np.float64)
    genres = np.zeros(Y.shape, dtype=np.uint8)
    maybe = np.zeros(Y.shape, dtype=np.uint8)
    n_folds = min(n_folds, len(Y))
    if n_folds < 2:
        return clone(layer).fit(scores, Y, years).predict_tiers(scores, years)
    folds = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fit_rows, held_rows in folds.split(scores, Y):
        fit_years = None if years is None else np.asarray(years)[fit_rows]
        held_years = None if years is None else np.asarray(years)[held_rows]
        fitted = clone(layer).fit(scores[fit_rows], Y[fit_rows], fit_years)
        tiers = fitted.predict_tiers(scores[held_rows], held_years)
        proba[held_rows], genres[held_rows], maybe[held_rows] = tiers
    return proba, genres, maybe
