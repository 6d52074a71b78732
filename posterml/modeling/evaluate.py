"""What a run measures on each split, and whether its model beats the trivial baseline."""

from __future__ import annotations

import logging

import numpy as np

from posterml.evaluation.metrics import (
    AVERAGES,
    HEADLINE_AVERAGES,
    classification_metrics,
    decade_metrics,
    decision_stats,
    tier_metrics,
    top_k_baseline,
)
from posterml.genres import GENRES, genre_slug
from posterml.modeling.fitting import Decided

log = logging.getLogger("posterml")

# Per-genre numbers are kept as metrics for the test split only (users compare them across
# runs), so the headline is not buried; the other splits' per-genre detail goes to the
# reports tables.
PER_GENRE_SPLITS = ("test",)
_PER_GENRE_SUFFIXES = tuple(f"_{genre_slug(g)}" for g in GENRES)

# The margin a model must clear over "the 2 most frequent genres for every poster".
BASELINE_MARGIN = 0.01


def split_metrics(decided: Decided, split: str, y_train: np.ndarray) -> tuple[dict, dict]:
    """Everything measured on one split: per-genre and average metrics of the asserted
    genres, the maybe tier beside them, the decision statistics (asserted genres: what the
    register guard judges), the baseline, and F1 per decade beside the baseline's.
    Returns (metrics, tags).
    """
    metrics = classification_metrics(decided.Y, decided.y_pred, split)
    stats, worst = decision_stats(decided.Y, decided.y_pred, split)
    metrics.update(stats)
    if decided.maybe is not None:
        metrics.update(tier_metrics(decided.Y, decided.y_pred, decided.maybe, split))
    baseline = top_k_baseline(y_train, len(decided.Y))
    base = classification_metrics(decided.Y, baseline, split)
    metrics.update({f"{split}_baseline_f1_{a}": base[f"{split}_f1_{a}"] for a in AVERAGES})
    if split != "val":
        metrics.update(decade_metrics(decided.Y, decided.y_pred, decided.years, split, baseline))
    if decided.y_pred_with_year is not None:
        aware = classification_metrics(decided.Y, decided.y_pred_with_year, split)
        metrics.update({f"{split}_yearaware_f1_{a}": aware[f"{split}_f1_{a}"] for a in AVERAGES})
    return metrics, {f"most_overpredicted_{split}": worst}


def headline(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics worth an MLflow scalar: all but the per-genre ones outside the test split."""
    return {
        k: v
        for k, v in metrics.items()
        if not k.endswith(_PER_GENRE_SUFFIXES) or k.split("_", 1)[0] in PER_GENRE_SPLITS
    }


def check_against_baseline(metrics: dict[str, float]) -> bool:
    """Does the model beat the trivial baseline on validation (micro and samples F1) and say
    more than one thing? A run that does not is flagged loudly: a 3-trial search once chose
    gamma_scale 7.97 and shipped "Comedy, Drama" for every poster without a word."""
    beats = (
        all(
            metrics.get(f"val_f1_{a}", 0.0)
            >= metrics.get(f"val_baseline_f1_{a}", 0.0) + BASELINE_MARGIN
            for a in HEADLINE_AVERAGES
        )
        and metrics.get("val_distinct_predictions", 0.0) > 1
    )
    if not beats:
        banner = "!" * 78
        log.warning(
            "\n%s\nTHIS MODEL DOES NOT BEAT THE TRIVIAL BASELINE (the 2 most frequent genres "
            "for every poster):\n  val F1 micro %.3f vs baseline %.3f, samples %.3f vs %.3f, "
            "%d distinct genre sets predicted.\n  It is tagged beats_baseline=false and "
            "`register` will not pick it.\n%s",
            banner,
            metrics.get("val_f1_micro", 0.0),
            metrics.get("val_baseline_f1_micro", 0.0),
            metrics.get("val_f1_samples", 0.0),
            metrics.get("val_baseline_f1_samples", 0.0),
            int(metrics.get("val_distinct_predictions", 0)),
            banner,
        )
    return beats
