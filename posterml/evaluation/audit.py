"""Label audit: the posters of a dataset whose genres look wrong, worst first.

Why: a poster filed under the wrong genre teaches every model that genre's look wrongly,
and rare genres suffer most (ten mislabelled Westerns are a large share of the Westerns).
Finding them by eye in thousands of posters is hopeless; a model that never saw a poster
can say where its label and its look disagree.

How:

1. **Out-of-fold probabilities from the recipe's model.** The dataset's EfficientNet-Lite0
   features (cached), balanced RBF SVMs fitted on the other folds (``fit_classifier``, as
   ``posterml.modeling.fitting.out_of_fold_scores`` does), then the decision layer's
   Platt calibration fitted on the other folds again (``cross_fit_predict``): no poster's
   own label touches its probabilities. C and gamma are fixed (``AuditSettings``), not
   searched: an audit is run often, a search costs 20 fits.
2. **Confident learning** (Northcutt, Jiang and Chuang 2021), cleanlab's multi-label form:
   one-vs-rest per genre, a given genre is *suspect* and an absent one *missing* when the
   probability confidently contradicts the label, measured against that genre's own
   per-class thresholds (so a rare genre is judged by rare-genre standards). A poster is
   flagged when any genre is (``cleanlab.multilabel_classification.filter``).
3. **Ranking**: flagged posters first, each group by cleanlab's multi-label label quality
   score (0 = surely wrong, 1 = surely right; probabilities read against each genre's own
   average confidence); ``review_priority`` is ``1 - label_quality``.

``audit_frame`` writes what the review page and ``posterml add`` read: ``genres`` is the
proposed label (given genres less the suspect ones, plus the missing ones), ``maybe`` the
genres in dispute, so the page marks whichever of them is not ticked.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from posterml.data.dataset import PosterDataset
from posterml.evaluation.decision import DEFAULT_CV_FOLDS
from posterml.genres import GENRES, MAX_GENRES_PER_MOVIE
from posterml.io import atomic_write
from posterml.names import PRIORITY_COLUMN, REVIEWED_COLUMN
from posterml.progress import write_line

if TYPE_CHECKING:  # the experiment modules import MLflow: `posterml --help` need not wait
    from posterml.modeling.families import Family
    from posterml.modeling.settings import ExperimentConfig

# Measured on ../shared/posters (train 1990-2018 -> val, decision layer cross-fitted):
# C 1 / gamma_scale 1 scored val weighted F1 .499, C 3 .491, C 10 .480, C 3 with gamma
# 0.5x .485 and 2x .498.
DEFAULT_C = 1.0
DEFAULT_GAMMA_SCALE = 1.0
COLUMNS = (
    "file",
    "genres",
    "maybe",
    "year",
    REVIEWED_COLUMN,
    PRIORITY_COLUMN,
    "label_quality",
    "given_genres",
    "suspect_genres",
    "missing_genres",
    "poster_id",
    "title",
)


class AuditError(ValueError):
    """The dataset cannot be audited (too few readable posters for the folds)."""


@dataclass(frozen=True)
class AuditSettings:
    """The recipe's model with fixed hyperparameters, and how many folds judge each poster."""

    backbone: str = "efficientnet_lite0"
    C: float = DEFAULT_C
    gamma_scale: float = DEFAULT_GAMMA_SCALE
    folds: int = DEFAULT_CV_FOLDS
    seed: int = 42

    def family(self) -> Family:
        from posterml.modeling.families import get_family
        from posterml.modeling.settings import BackboneSVMOptions

        return get_family(
            "resnet_svm", BackboneSVMOptions(backbone=self.backbone, class_weight="balanced")
        )

    def params(self) -> dict:
        return {"C": self.C, "gamma_scale": self.gamma_scale, "class_weight": "balanced"}

    def config(self) -> ExperimentConfig:
        """The recipe's decision-layer settings (their defaults), with these folds and seed."""
        from posterml.modeling.settings import ExperimentConfig

        return ExperimentConfig(family="resnet_svm", cv_folds=self.folds, seed=self.seed)


@dataclass
class Suspects:
    """What confident learning found, per poster (rows) and genre (columns, ``GENRES``)."""

    flagged: np.ndarray  # (n,) bool: some genre looks wrong
    suspect: np.ndarray  # (n, 19) bool: given, but the model confidently disagrees
    missing: np.ndarray  # (n, 19) bool: not given, but the model is confident it belongs
    quality: np.ndarray  # (n,) label quality in [0, 1]: low = likely wrong

    def ranking(self) -> np.ndarray:
        """Row indices, flagged posters first, each group by label quality (worst first)."""
        return np.lexsort((self.quality, ~self.flagged))


@dataclass
class Audit:
    """An audited dataset: the posters that could be read, their probabilities and suspects."""

    dataset: PosterDataset  # the readable posters only, in dataset order
    proba: np.ndarray
    suspects: Suspects
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_flagged(self) -> int:
        return int(self.suspects.flagged.sum())


def out_of_fold_probabilities(
    X: np.ndarray,
    Y: np.ndarray,
    years: np.ndarray | None,
    settings: AuditSettings,
    progress: bool = True,
) -> np.ndarray:
    """Calibrated probabilities for every row from models and calibrations that never saw
    it: ``out_of_fold_scores``, then a decision layer cross-fitted on the same folds."""
    from posterml.evaluation.decision import cross_fit_predict
    from posterml.modeling.fitting import decision_layer, out_of_fold_scores

    X, Y = np.asarray(X), np.asarray(Y)
    if len(Y) < 2 * settings.folds:
        raise AuditError(
            f"{len(Y)} readable poster(s): an audit with {settings.folds} folds needs at least "
            f"{2 * settings.folds}"
        )
    config = settings.config()
    scores = out_of_fold_scores(
        settings.family(), settings.params(), config, X, Y, progress=progress
    )
    layer = decision_layer(config)
    proba, _, _ = cross_fit_predict(
        layer, scores, Y, years, n_folds=settings.folds, seed=settings.seed
    )
    return proba


def find_suspects(Y: np.ndarray, proba: np.ndarray) -> Suspects:
    """Confident learning on given labels ``Y`` (n, 19) and honest probabilities ``proba``."""
    from cleanlab.multilabel_classification.filter import (
        find_label_issues,
        find_multilabel_issues_per_class,
    )
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    Y = np.asarray(Y).astype(np.uint8)
    proba = np.clip(np.asarray(proba, dtype=np.float64), 1e-6, 1 - 1e-6)
    labels = [np.flatnonzero(row).tolist() for row in Y]
    # n_jobs=1: the 19 one-vs-rest problems are small, and forking a process that holds
    # TensorFlow costs more than it saves.
    with warnings.catch_warnings():
        # Said once per genre with a handful of posters (every unused genre of a small set);
        # such a genre simply yields few suspects, which the csv shows.
        warnings.filterwarnings("ignore", "May not flag all label issues", UserWarning)
        flagged = np.asarray(find_label_issues(labels, proba, n_jobs=1), dtype=bool)
        per_genre = find_multilabel_issues_per_class(labels, proba, n_jobs=1)
    # adjust_pred_probs: each genre's probabilities are read against that genre's average
    # confidence, so a true Western at p = .3 is not ranked as doubtful as a Drama at .3. On
    # the synthetic set with 6 swapped labels it ranked them 0-34 (one at 116) of 300,
    # against 0-127 without.
    quality = get_label_quality_scores(labels, proba, adjust_pred_probs=True)
    per_genre = np.asarray(per_genre, dtype=bool)
    quality = np.asarray(quality, dtype=np.float64)
    given = Y.astype(bool)
    return Suspects(flagged, per_genre & given, per_genre & ~given, quality)


def audit_dataset(
    dataset: PosterDataset, settings: AuditSettings | None = None, progress: bool = True
) -> Audit:
    """Features, out-of-fold probabilities and suspects for every readable poster.

    Unreadable images are skipped and listed in ``Audit.failures`` (and printed as they are
    met): one bad JPEG must not stop an audit of thousands.
    """
    settings = settings or AuditSettings()
    featurizer = settings.family().featurizer()
    featurizer.progress = progress
    result = featurizer.transform_paths(dataset.image_paths)
    for path, reason in result.failures:
        write_line(f"skipped {path}: {reason}")
    readable = dataset.subset(dataset.ids[result.ok])
    proba = out_of_fold_probabilities(
        result.features, readable.labels, readable.years, settings, progress
    )
    return Audit(readable, proba, find_suspects(readable.labels, proba), list(result.failures))


# --------------------------------------------------------------------------- the csv
def _names(columns: np.ndarray, order: np.ndarray) -> list[str]:
    """Genre names of the True ``columns``, in ``order`` (an argsort over genres)."""
    return [GENRES[j] for j in order if columns[j]]


def proposed_genres(given: np.ndarray, suspect: np.ndarray, missing: np.ndarray, proba) -> list:
    """The label the audit proposes: given less suspect, plus missing, most probable first,
    at most five; never empty (the most probable genre stands in, as the decision layer's
    ``min_one_genre`` does), since a dataset row needs a genre."""
    order = np.argsort(-np.asarray(proba), kind="stable")
    keep = (np.asarray(given, bool) & ~suspect) | missing
    names = _names(keep, order)[:MAX_GENRES_PER_MOVIE]
    return names or [GENRES[order[0]]]


def audit_frame(audit: Audit, folder: str | Path, top: int = 0) -> pd.DataFrame:
    """The flagged posters, worst first (``top`` > 0: only that many), as csv rows whose
    ``file`` is relative to ``folder``, the csv's folder."""
    folder = Path(folder).resolve()
    frame, suspects, proba = audit.dataset.frame, audit.suspects, audit.proba
    rows = [i for i in suspects.ranking() if suspects.flagged[i]]
    rows = rows[:top] if top > 0 else rows
    records = []
    for i in rows:
        order = np.argsort(-proba[i], kind="stable")
        given = audit.dataset.labels[i].astype(bool)
        suspect, missing = suspects.suspect[i], suspects.missing[i]
        # Suspects least probable first: the likeliest mistake leads.
        suspect_names = _names(suspect, order[::-1])
        missing_names = _names(missing, order)
        records.append(
            {
                "file": os.path.relpath(frame["image"].iat[i], folder),
                "genres": ", ".join(proposed_genres(given, suspect, missing, proba[i])),
                "maybe": ", ".join(suspect_names + missing_names),
                "year": int(frame["year"].iat[i]),
                REVIEWED_COLUMN: "",
                PRIORITY_COLUMN: round(1.0 - float(suspects.quality[i]), 4),
                "label_quality": round(float(suspects.quality[i]), 4),
                "given_genres": ", ".join(frame["genres"].iat[i]),
                "suspect_genres": ", ".join(suspect_names),
                "missing_genres": ", ".join(missing_names),
                "poster_id": frame["poster_id"].iat[i],
                "title": frame["title"].iat[i],
            }
        )
    return pd.DataFrame(records, columns=list(COLUMNS))


def write_audit_csv(table: pd.DataFrame, out: str | Path) -> Path:
    """Write the audit table atomically (never half a csv), UTF-8 with a byte-order mark so
    a spreadsheet shows accented titles right, as ``posterml predict`` does."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "w", newline="", encoding="utf-8-sig") as handle:
        table.to_csv(handle, index=False)
    return out


def genre_counts(mask: np.ndarray, genres: Sequence[str] = GENRES) -> dict[str, int]:
    """How many posters each genre is marked for in ``mask`` (n, 19), largest first."""
    counts = np.asarray(mask).sum(axis=0)
    return {genres[j]: int(counts[j]) for j in np.argsort(-counts, kind="stable") if counts[j]}
