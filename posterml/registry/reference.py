"""A registered model scored on the dealer's reference set, the way the server scores.

A reference set is a labelled folder the dealer keeps for judging models and never trains
on. Its posters go through ``PosterGenreModel.predict``, the served model's own code path
(base64 images and release years in, decided genres out), in the installed posterml: no
code from the model's files runs. The metrics are named ``reference_*``: the four F1
averages, per decade and before 1980 beside "Drama + Comedy for every poster", and genres
per poster against the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from posterml.data.dataset import PosterDataset
from posterml.evaluation.metrics import (
    AVERAGES,
    HEADLINE_AVERAGES,
    VINTAGE_BEFORE,
    classification_metrics,
    decade_metrics,
    decision_stats,
    genres_excess,
    genres_shortfall,
)
from posterml.genres import GENRE_INDEX, to_matrix
from posterml.names import REFERENCE_PREFIX
from posterml.serving.limits import RequestSlots, ServingLimits
from posterml.serving.pyfunc import PosterGenreModel, encode_image_file, load_pipeline
from posterml.tracking import poster_table

PREFIX = REFERENCE_PREFIX
BASELINE_GENRES = ("Drama", "Comedy")
BATCH_ROWS = 32
HEADLINE = (
    "f1_micro",
    "f1_samples",
    "f1_macro",
    "f1_weighted",
    "f1_micro_pre1980",
    "f1_samples_pre1980",
    "baseline_f1_micro",
    "baseline_f1_samples",
    "baseline_f1_micro_pre1980",
    "genres_per_poster",
    "true_genres_per_poster",
    "genres_per_poster_ratio",
    "n",
    "n_pre1980",
)


@dataclass
class ReferenceScore:
    """``metrics`` keyed ``reference_<name>``; posters the model could not read are listed."""

    metrics: dict[str, float]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> float | None:
        return self.metrics.get(f"{PREFIX}_{name}")

    def headline(self) -> dict[str, float]:
        return {k: v for k in HEADLINE if (v := self.get(k)) is not None}


def served_model(model_uri: str) -> PosterGenreModel:
    """The pyfunc class ``mlflow models serve`` runs, around a pipeline loaded as data."""
    model = PosterGenreModel()
    model.pipeline = load_pipeline(model_uri)
    model.limits = ServingLimits()
    model.slots = RequestSlots(model.limits.max_concurrent)
    return model


def predict_genres(
    model: PosterGenreModel, paths: list[str], years: np.ndarray
) -> tuple[list[list[str] | None], list[tuple[str, str]]]:
    """Decided genres per poster (None where unreadable) and the unreadable ones' reasons.

    Requests of ``BATCH_ROWS`` posters; a request the model refuses is retried poster by
    poster, so one bad image costs only its own row."""
    from mlflow.exceptions import MlflowException

    genres: list[list[str] | None] = []
    skipped: list[tuple[str, str]] = []

    def request(rows: range) -> pd.DataFrame:
        frame = pd.DataFrame(
            {
                "image": [encode_image_file(paths[i]) for i in rows],
                "year": [int(years[i]) for i in rows],
            }
        )
        return model.predict(None, frame)

    for start in range(0, len(paths), BATCH_ROWS):
        rows = range(start, min(start + BATCH_ROWS, len(paths)))
        try:
            genres += [list(g) for g in request(rows)["genres"]]
            continue
        except (MlflowException, OSError):
            pass
        for i in rows:
            try:
                genres.append(list(request(range(i, i + 1))["genres"][0]))
            except (MlflowException, OSError) as exc:
                genres.append(None)
                skipped.append((paths[i], getattr(exc, "message", str(exc))))
    return genres, skipped


def reference_metrics(y_true: np.ndarray, y_pred: np.ndarray, years: np.ndarray) -> dict:
    """Every ``reference_*`` metric of decisions ``y_pred`` against ``y_true``."""
    baseline = np.zeros_like(y_true)
    baseline[:, [GENRE_INDEX[g] for g in BASELINE_GENRES]] = 1
    metrics = {
        k: v
        for k, v in classification_metrics(y_true, y_pred, PREFIX).items()
        if "_support_" not in k
    }
    for name, value in classification_metrics(y_true, baseline, PREFIX).items():
        if any(name == f"{PREFIX}_f1_{a}" for a in AVERAGES):
            metrics[name.replace(f"{PREFIX}_", f"{PREFIX}_baseline_")] = value
    metrics.update(decade_metrics(y_true, y_pred, years, PREFIX, baseline))
    vintage = np.asarray(years) < VINTAGE_BEFORE
    metrics[f"{PREFIX}_n"] = float(len(y_true))
    metrics[f"{PREFIX}_n_pre1980"] = float(vintage.sum())
    if vintage.any():
        for who, decided in (("", y_pred), ("baseline_", baseline)):
            for average in HEADLINE_AVERAGES:
                metrics[f"{PREFIX}_{who}f1_{average}_pre1980"] = classification_metrics(
                    y_true[vintage], decided[vintage], PREFIX
                )[f"{PREFIX}_f1_{average}"]
    stats, _ = decision_stats(y_true, y_pred, PREFIX)
    metrics.update(stats)
    predicted = metrics[f"{PREFIX}_genres_per_poster"]
    true = metrics[f"{PREFIX}_true_genres_per_poster"]
    if true:  # in the unit of the promotion rule (posterml.registry.rule)
        metrics[f"{PREFIX}_genres_per_poster_ratio"] = predicted / true
        metrics[f"{PREFIX}_genres_per_poster_excess"] = genres_excess(predicted, true)
        metrics[f"{PREFIX}_genres_per_poster_shortfall"] = genres_shortfall(predicted, true)
    return metrics


def score_reference(model_uri: str, reference: PosterDataset) -> ReferenceScore:
    """Score the model at ``model_uri`` on every readable poster of ``reference``."""
    model = served_model(model_uri)
    genres, skipped = predict_genres(model, reference.image_paths, reference.years)
    ok = np.array([g is not None for g in genres], dtype=bool)
    if not ok.any():
        raise ValueError(f"{model_uri}: no readable poster in the reference set {reference.root}")
    y_pred = to_matrix([g for g in genres if g is not None])
    metrics = reference_metrics(reference.labels[ok], y_pred, reference.years[ok])
    return ReferenceScore(metrics, skipped)


def reference_input(reference: PosterDataset):
    """The reference set as an MLflow dataset whose digest is its content hash."""
    return poster_table(
        reference.frame,
        str(reference.root),
        name=f"{reference.name} (reference)",
        digest=reference.content_hash[:16],
    )
