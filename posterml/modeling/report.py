"""What a run writes to MLflow besides its metrics: data inputs, skipped images, reports,
figures and the description shown at the top of the run's page."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from posterml.data.dataset import PosterDataset
from posterml.data.splits import Splits
from posterml.evaluation.metrics import (
    AVERAGES,
    decade_metrics,
    report_frame,
    report_text,
    tier_report_frame,
    top_k_baseline,
)
from posterml.modeling.fitting import Decided
from posterml.modeling.inputs import FeatureSets
from posterml.modeling.settings import ExperimentConfig
from posterml.names import (
    BEATS_BASELINE_TAG,
    DATASET_HASH_TAG,
    DATASET_TAG,
    SPLIT_IDS_ARTIFACT,
)
from posterml.tracking import poster_table

log = logging.getLogger("posterml")


def plt_close(figure) -> None:
    """Free a logged figure: pyplot keeps every open figure alive otherwise."""
    import matplotlib.pyplot as plt

    plt.close(figure)


def dataset_tags(dataset: PosterDataset) -> dict[str, str]:
    return {
        DATASET_TAG: dataset.name,
        DATASET_HASH_TAG: dataset.content_hash,
        "dataset_root": str(dataset.root),
    }


# MLflow's dataset contexts for the splits (the UI shows one input per split).
SPLIT_CONTEXTS = {
    "train": "training",
    "val": "validation",
    "test": "test",
    "cross_period": "cross-period",
}


def log_dataset(dataset: PosterDataset, splits: Splits) -> None:
    """Which data this run used: tags, one MLflow dataset input per split (its digest covers
    the dataset's content hash and the split's ids, so a capped or re-split run is a
    different input), and the split ids."""
    mlflow.set_tags(dataset_tags(dataset))
    frame = dataset.frame
    for name, ids in splits.items():
        digest = hashlib.sha256(dataset.content_hash.encode())
        digest.update("\n".join(sorted(map(str, ids))).encode())
        source = poster_table(
            frame[frame["poster_id"].isin(set(ids))],
            str(dataset.root),
            name=f"{dataset.name} ({name})",
            digest=digest.hexdigest()[:16],
        )
        for attempt in range(3):
            try:
                mlflow.log_input(source, context=SPLIT_CONTEXTS.get(name, name))
                break
            except mlflow.exceptions.MlflowException:
                # Two workers registering the same dataset at once: MLflow checks, then
                # inserts, so the second insert fails once; by the retry the row exists.
                if attempt == 2:
                    raise
                time.sleep(0.2 + random.random())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / SPLIT_IDS_ARTIFACT.rsplit("/", 1)[-1]
        # With each image's sha256: `register --reference` finds reference posters by content.
        sha = dataset.frame.set_index("poster_id")["image_sha256"]
        frame = splits.to_frame()
        frame.assign(image_sha256=frame["poster_id"].map(sha)).to_csv(path, index=False)
        mlflow.log_artifact(str(path), "data")


def log_failures(failures: list[tuple[str, str]]) -> None:
    """Unreadable images: a warning with the count, and the list as an artifact."""
    mlflow.log_metric("n_unreadable_images", len(failures))
    if not failures:
        return
    log.warning("skipped %d unreadable image(s), e.g. %s", len(failures), failures[0])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "unreadable_images.csv"
        pd.DataFrame(failures, columns=["image", "reason"]).to_csv(path, index=False)
        mlflow.log_artifact(str(path), "data")


def log_reports(features: FeatureSets, decided: dict[str, Decided], metrics: dict, family: str):
    """Classification reports per split (the asserted genres), the per-tier table (each
    genre's precision and recall in genres and in maybe, and the share found in either),
    the per-genre F1 chart and the F1-by-decade curve."""
    from posterml.modeling.figures import f1_by_decade_figure, per_genre_f1_figure

    for split, result in decided.items():
        mlflow.log_table(report_frame(result.Y, result.y_pred), f"reports/{split}_report.json")
        mlflow.log_text(report_text(result.Y, result.y_pred), f"reports/{split}_report.txt")
        if result.maybe is not None:
            tiers = tier_report_frame(result.Y, result.y_pred, result.maybe)
            mlflow.log_table(tiers, f"reports/{split}_tiers.json")
            text = tiers.to_string(index=False, float_format=lambda v: f"{v:.3f}")
            mlflow.log_text(text, f"reports/{split}_tiers.txt")
    shown = [s for s in ("val", "test", "cross_period") if s in decided]
    figure = per_genre_f1_figure(metrics, shown, f"{family}: F1 per genre")
    mlflow.log_figure(figure, "figures/per_genre_f1.png")
    plt_close(figure)
    held_out = [decided[s] for s in ("test", "cross_period") if s in decided]
    if held_out:
        Y = np.concatenate([d.Y for d in held_out])
        pooled = decade_metrics(
            Y,
            np.concatenate([d.y_pred for d in held_out]),
            np.concatenate([d.years for d in held_out]),
            "held_out",
            top_k_baseline(features.Y["train"], len(Y)),
        )
        figure = f1_by_decade_figure(pooled, "held_out", f"{family}: F1 by decade of release")
        mlflow.log_figure(figure, "figures/f1_by_decade.png")
        plt_close(figure)


def run_description(
    config: ExperimentConfig,
    dataset: PosterDataset,
    splits: Splits,
    params: dict,
    metrics: dict,
    tags: dict,
) -> str:
    """The run's description in the MLflow UI (``mlflow.note.content``): data, the headline
    F1 table beside the baseline, how much the model says, and the chosen parameters."""
    sizes = ", ".join(f"{name} {len(ids)}" for name, ids in splits.items())
    lines = [
        f"**{config.family}** on `{dataset.name}` ({len(dataset)} posters: {sizes}; "
        f"train period {splits.train_period}, cross-period {splits.test_period}).",
        "",
        "| split | micro F1 | macro F1 | weighted F1 | samples F1 | baseline samples F1 "
        "| genres/poster (true) | maybe/poster | worst over-prediction |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for split in ("val", "test", "cross_period"):
        if f"{split}_f1_micro" not in metrics:
            continue
        f1 = [f"{metrics[f'{split}_f1_{a}']:.3f}" for a in AVERAGES]
        worst = tags.get(f"most_overpredicted_{split}", "")
        lines.append(
            f"| {split} | {' | '.join(f1)} | {metrics[f'{split}_baseline_f1_samples']:.3f} "
            f"| {metrics[f'{split}_genres_per_poster']:.2f} "
            f"({metrics[f'{split}_true_genres_per_poster']:.2f}) "
            f"| {metrics.get(f'{split}_maybe_per_poster', 0.0):.2f} "
            f"| {worst} {metrics[f'{split}_max_overprediction']:.1f}x |"
        )
    verdict = "beats" if tags.get(BEATS_BASELINE_TAG) == "true" else "**does not beat**"
    honest = (
        f"cross-validated over train+val ({config.cv_folds} folds)"
        if config.cv_folds >= 2
        else "validation split, decisions cross-fitted"
    )
    lines += [
        "",
        f"val: {honest}; test and cross_period: held out.",
        f"The model {verdict} the baseline (the 2 most frequent genres for every poster).",
        f"Search: {config.n_trials} Optuna trials on `{config.objective}`"
        + "".join(f", `{k}={v}`" for k, v in dataclasses.asdict(config.options).items())
        + ".",
        "Chosen: " + ", ".join(f"`{k}={v}`" for k, v in params.items()) + ".",
        "F1 is of the asserted `genres`; `reports/<split>_tiers.json` has each genre's "
        "precision and recall in genres and in maybe.",
        "Figures: `figures/per_genre_f1.png`, `figures/f1_by_decade.png`, "
        "`figures/optuna_history.png`.",
    ]
    return "\n".join(lines)


def log_figures(study, objective: str) -> None:
    """The Optuna history (integer trial ticks, the objective named) and importances."""
    from posterml.modeling.figures import optuna_figures

    for name, figure in optuna_figures(study, objective).items():
        mlflow.log_figure(figure, f"figures/{name}")
        plt_close(figure)
