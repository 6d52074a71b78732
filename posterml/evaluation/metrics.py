"""Multilabel metrics with names that line up across model families in MLflow's compare view.

Per genre: ``{split}_{metric}_{genre}`` (``test_f1_science_fiction``); averages:
``{split}_{metric}_{average}`` (``test_f1_weighted``); plus ``{split}_hamming_loss``.
``mlflow.models.evaluate`` does not do multilabel, hence this module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    classification_report,
    f1_score,
    hamming_loss,
    precision_recall_fscore_support,
)

from posterml.genres import GENRES, genre_slug

AVERAGES = ("micro", "macro", "weighted", "samples")
# The dealer's stock: "pre-1980" in every rule, table and benchmark.
VINTAGE_BEFORE = 1980
# The averages a model is judged by against the baseline and the champion.
HEADLINE_AVERAGES = ("micro", "samples")


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, split: str) -> dict[str, float]:
    """Per-genre precision/recall/F1/support, their four averages and the Hamming loss.

    Genres with no positives and no predictions score 0 (``zero_division=0``), as sklearn's
    report does, so a model cannot look good by ignoring a rare genre.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    metrics: dict[str, float] = {}
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    for j, genre in enumerate(GENRES):
        name = genre_slug(genre)
        metrics[f"{split}_precision_{name}"] = float(precision[j])
        metrics[f"{split}_recall_{name}"] = float(recall[j])
        metrics[f"{split}_f1_{name}"] = float(f1[j])
        metrics[f"{split}_support_{name}"] = float(support[j])
    for average in AVERAGES:
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        metrics[f"{split}_precision_{average}"] = float(p)
        metrics[f"{split}_recall_{average}"] = float(r)
        metrics[f"{split}_f1_{average}"] = float(f)
    metrics[f"{split}_hamming_loss"] = float(hamming_loss(y_true, y_pred))
    return metrics


def report_frame(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """sklearn's classification report as a table: one row per genre and per average."""
    report = classification_report(
        y_true, y_pred, target_names=list(GENRES), zero_division=0, output_dict=True
    )
    frame = pd.DataFrame(report).T.reset_index(names="label")
    frame["support"] = frame["support"].astype(int)
    return frame[["label", "precision", "recall", "f1-score", "support"]]


def report_text(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """The same report as fixed-width text, for reading in the artifact viewer."""
    return classification_report(
        y_true, y_pred, target_names=list(GENRES), zero_division=0, digits=3
    )


def top_k_baseline(y_train: np.ndarray, n_rows: int, k: int = 2) -> np.ndarray:
    """Predict the ``k`` most frequent training genres for every poster (the floor to beat)."""
    top = np.argsort(-np.asarray(y_train).sum(axis=0), kind="stable")[:k]
    y_pred = np.zeros((n_rows, y_train.shape[1]), dtype=np.uint8)
    y_pred[:, top] = 1
    return y_pred


def decision_stats(y_true: np.ndarray, y_pred: np.ndarray, split: str) -> tuple[dict, str]:
    """How much a model says against the truth: genres per poster (predicted and true) and the
    worst over-prediction ratio over genres, with the genre it belongs to.

    The ratio is (predicted + 1) / (true + 1) posters, smoothed so a genre with no true poster
    in the split still registers when it is predicted for many (the served model that called
    46% of posters "TV Movie", true rate 0.4%, scores ~40 here; an honest model stays near 1).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    ratio = (y_pred.sum(axis=0) + 1.0) / (y_true.sum(axis=0) + 1.0)
    worst = int(np.argmax(ratio))
    metrics = {
        f"{split}_genres_per_poster": float(y_pred.sum(axis=1).mean()) if len(y_pred) else 0.0,
        f"{split}_true_genres_per_poster": float(y_true.sum(axis=1).mean()) if len(y_true) else 0.0,
        f"{split}_max_overprediction": float(ratio[worst]),
        f"{split}_distinct_predictions": float(len({r.tobytes() for r in y_pred})),
    }
    return metrics, GENRES[worst]


def genres_excess(predicted: float, true: float) -> float:
    """Asserted genres per poster above the truth, as a fraction of it (0 when not above)."""
    return max(predicted / true - 1.0, 0.0)


def genres_shortfall(predicted: float, true: float) -> float:
    """Asserted genres per poster below the truth, as a fraction of it (0 when not below)."""
    return max(1.0 - predicted / true, 0.0)


def tier_metrics(
    y_true: np.ndarray, genres: np.ndarray, maybe: np.ndarray, split: str
) -> dict[str, float]:
    """The ``maybe`` tier beside the asserted ``genres`` (whose metrics are
    ``classification_metrics``): per genre ``{split}_maybe_precision_{genre}`` and
    ``{split}_maybe_recall_{genre}``; ``{split}_maybe_per_poster``; micro precision and
    recall of maybe; and ``{split}_found_recall_{micro,macro}``, the share of true genres
    found in genres or maybe (a genre is never in both, so found = recall of either added).
    """
    y_true, genres, maybe = (np.asarray(a).astype(bool) for a in (y_true, genres, maybe))
    precision, recall, _, _ = precision_recall_fscore_support(
        y_true, maybe, average=None, zero_division=0
    )
    metrics: dict[str, float] = {}
    for j, genre in enumerate(GENRES):
        name = genre_slug(genre)
        metrics[f"{split}_maybe_precision_{name}"] = float(precision[j])
        metrics[f"{split}_maybe_recall_{name}"] = float(recall[j])
    p, r, _, _ = precision_recall_fscore_support(y_true, maybe, average="micro", zero_division=0)
    found = (genres | maybe) & y_true
    positives = y_true.sum(axis=0)
    metrics.update(
        {
            f"{split}_maybe_per_poster": float(maybe.sum(axis=1).mean()) if len(maybe) else 0.0,
            f"{split}_maybe_precision_micro": float(p),
            f"{split}_maybe_recall_micro": float(r),
            f"{split}_found_recall_micro": float(found.sum() / max(positives.sum(), 1)),
            f"{split}_found_recall_macro": float(
                np.mean(found.sum(axis=0) / np.maximum(positives, 1))
            ),
        }
    )
    return metrics


def tier_report_frame(y_true: np.ndarray, genres: np.ndarray, maybe: np.ndarray) -> pd.DataFrame:
    """One row per genre: its posters, how often each tier names it and is right, and the
    share of its posters found in genres or maybe."""
    y_true, genres, maybe = (np.asarray(a).astype(bool) for a in (y_true, genres, maybe))
    rows = []
    for j, genre in enumerate(GENRES):
        truth = y_true[:, j]
        row = {"genre": genre, "support": int(truth.sum())}
        for tier, chosen in (("genres", genres[:, j]), ("maybe", maybe[:, j])):
            hits = int((chosen & truth).sum())
            row[f"{tier}_named"] = int(chosen.sum())
            row[f"{tier}_precision"] = hits / chosen.sum() if chosen.any() else float("nan")
            row[f"{tier}_recall"] = hits / truth.sum() if truth.any() else float("nan")
        found = int(((genres[:, j] | maybe[:, j]) & truth).sum())
        row["found"] = found / truth.sum() if truth.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


DECADE_AVERAGES = ("micro", "weighted", "samples")


def decade_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    years: np.ndarray,
    split: str,
    baseline: np.ndarray | None = None,
) -> dict[str, float]:
    """F1 (micro, weighted, samples) per decade of release, beside the baseline's:
    ``{split}_f1_micro_1970s``, ``{split}_baseline_f1_micro_1970s``, ``{split}_n_1970s``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    decades = (np.asarray(years, dtype=np.int64) // 10) * 10
    metrics: dict[str, float] = {}
    for decade in np.unique(decades):
        rows = decades == decade
        suffix = f"{int(decade)}s"
        metrics[f"{split}_n_{suffix}"] = float(rows.sum())
        for average in DECADE_AVERAGES:
            metrics[f"{split}_f1_{average}_{suffix}"] = float(
                f1_score(y_true[rows], y_pred[rows], average=average, zero_division=0)
            )
            if baseline is not None:
                metrics[f"{split}_baseline_f1_{average}_{suffix}"] = float(
                    f1_score(y_true[rows], baseline[rows], average=average, zero_division=0)
                )
    return metrics
