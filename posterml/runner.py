"""The one experiment runner every model family plugs into.

data -> splits -> features -> Optuna study (one nested MLflow run per trial) -> refit with the
best hyperparameters -> val/test/cross-period metrics, reports and figures -> a served-ready
pyfunc model on the parent run. Families only say how to featurize, what to search and how
to build a classifier (``posterml.models.families``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd

from posterml.cli_args import parse_bool, parse_whole
from posterml.data.dataset import PosterDataset
from posterml.data.sources import load_dataset
from posterml.data.splits import Splits, make_splits
from posterml.evaluation.decision import DecisionLayer, cross_fit_predict
from posterml.evaluation.metrics import (
    AVERAGES,
    classification_metrics,
    decade_metrics,
    decision_stats,
    report_frame,
    report_text,
    top_k_baseline,
)
from posterml.models.families import Family, get_family
from posterml.names import ROLE_TAG
from posterml.tracking import configure_tracking, log_new_params

log = logging.getLogger("posterml")


@dataclass
class ExperimentConfig:
    """Every knob of an experiment run; each field is an MLproject parameter."""

    family: str
    data: str = "synthetic"
    backbone: str = "resnet50"
    seed: int = 42
    n_trials: int = 10
    timeout: float = 0.0  # seconds for the whole search; 0 = no limit
    train_years: str = "all"
    test_years: str = "all"
    storage: str = "sqlite:///optuna.db"
    study_name: str = "new"  # "new": one study per run; name one to share it between workers
    metric: str = "val_f1_weighted"
    tune_thresholds: bool = True  # false: the study's rule, raw scores cut at 0.5
    min_one_genre: bool = True
    max_genres: int = 5  # TMDb's first five, as the study kept
    rate_cap: float = 1.3  # no genre predicted for more than 1.3x its rate
    min_positives: int = 15  # fewer examples than this: a genre keeps the 0.5 cut
    cv_folds: int = 5  # out-of-fold scores over train+val; 0: decide from validation scores
    class_weight: str = "search"  # svm / classic: search, none or balanced
    positive_weighting: str = "search"  # mlp / cnn: search, none, sqrt or balanced
    epochs: int = 30
    pixel_size: str = "150x100"  # pca_classic: grayscale HEIGHTxWIDTH
    pca_components: int = 20
    image_size: str = "96x64"  # scratch_cnn: RGB HEIGHTxWIDTH
    max_posters: int = 0  # 0 = all; a cap for quick looks at big folders
    experiment: str = ""  # empty: the active/default MLflow experiment
    log_model: bool = True

    def params(self) -> dict:
        """What is logged as MLflow params (no secrets live in the config)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "experiment"}


# The recipe we ship: what `python -m benchmarks.quality` found best on ../shared/posters
# (EfficientNet-Lite0 features, which work offline, + balanced RBF SVMs behind the decision
# layer), trained on every decade so the decision layer knows each decade's genre rates.
# `mlflow run . -P data=FOLDER` runs it (the MLproject's `main` entry point).
RECOMMENDED = {
    "family": "resnet_svm",
    "backbone": "efficientnet_lite0",
    "class_weight": "balanced",
    "n_trials": 20,
}


def build_parser(family: str, defaults: dict | None = None) -> argparse.ArgumentParser:
    """argparse for one entry point; flags mirror ``ExperimentConfig`` (``--n-trials``)."""
    parser = argparse.ArgumentParser(description=f"posterml {family} experiment")
    for field in dataclasses.fields(ExperimentConfig):
        if field.name == "family":
            continue
        kind = {bool: parse_bool, int: parse_whole, float: float}.get(type(field.default), str)
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", dest=field.name, type=kind, default=field.default
        )
    parser.set_defaults(**{k: v for k, v in (defaults or {}).items() if k != "family"})
    return parser


def parse_config(
    family: str, argv: list[str] | None = None, defaults: dict | None = None
) -> ExperimentConfig:
    return ExperimentConfig(family=family, **vars(build_parser(family, defaults).parse_args(argv)))


# --------------------------------------------------------------------------- data & features
@dataclass
class FeatureSets:
    """Model inputs and targets per split, after dropping unreadable images."""

    X: dict[str, np.ndarray]
    Y: dict[str, np.ndarray]
    ids: dict[str, np.ndarray]
    years: dict[str, np.ndarray]
    failures: list[tuple[str, str]]
    featurizer: object
    seconds: float


def load_data(config: ExperimentConfig) -> tuple[PosterDataset, Splits]:
    dataset = load_dataset(config.data)
    if config.max_posters and len(dataset) > config.max_posters:
        rng = np.random.default_rng(config.seed)
        keep = np.sort(rng.choice(len(dataset), config.max_posters, replace=False))
        dataset = dataset.subset(dataset.ids[keep])
    splits = make_splits(
        dataset, seed=config.seed, train_years=config.train_years, test_years=config.test_years
    )
    return dataset, splits


def build_features(
    family: Family, config: ExperimentConfig, dataset: PosterDataset, splits: Splits
) -> FeatureSets:
    """Fit the featurizer on train images, transform every split, skip unreadable images."""
    start = time.perf_counter()
    featurizer = family.featurizer(config)
    by_id = dataset.frame.set_index("poster_id")["image"]
    featurizer.fit([by_id[i] for i in splits.train])
    all_ids = np.concatenate([ids for _, ids in splits.items()])
    result = featurizer.transform_paths([by_id[i] for i in all_ids])
    row_of = {pid: k for k, pid in enumerate(all_ids[result.ok])}
    labels = pd.DataFrame(dataset.labels, index=dataset.ids)
    year_of = dataset.frame.set_index("poster_id")["year"]
    X, Y, ids, years = {}, {}, {}, {}
    for name, split_ids in splits.items():
        kept = np.array([i for i in split_ids if i in row_of], dtype=object)
        ids[name] = kept
        years[name] = year_of.loc[list(kept)].to_numpy(dtype=np.int64)
        X[name] = result.features[[row_of[i] for i in kept]] if len(kept) else result.features[:0]
        Y[name] = (
            labels.loc[list(kept)].to_numpy(dtype=np.uint8)
            if len(kept)
            else np.zeros((0, dataset.labels.shape[1]), np.uint8)
        )
    return FeatureSets(
        X, Y, ids, years, list(result.failures), featurizer, time.perf_counter() - start
    )


# --------------------------------------------------------------------------- evaluation
def decision_layer(config: ExperimentConfig) -> DecisionLayer:
    """The unfitted decision layer these settings ask for (``posterml.evaluation.decision``)."""
    return DecisionLayer(
        calibrate=config.tune_thresholds,
        tune_thresholds=config.tune_thresholds,
        rate_cap=config.rate_cap,
        min_positives=config.min_positives,
        min_one_genre=config.min_one_genre,
        max_genres=config.max_genres,
    )


@dataclass
class Decided:
    """Labels, decisions and release years of one evaluated split."""

    Y: np.ndarray
    y_pred: np.ndarray
    years: np.ndarray
    y_pred_with_year: np.ndarray | None = None


def split_metrics(decided: Decided, split: str, y_train: np.ndarray) -> tuple[dict, dict]:
    """Everything logged about one split: per-genre and average metrics, the decision
    statistics, the baseline, and F1 per decade beside the baseline's. Returns (metrics, tags).
    """
    metrics = classification_metrics(decided.Y, decided.y_pred, split)
    stats, worst = decision_stats(decided.Y, decided.y_pred, split)
    metrics.update(stats)
    baseline = top_k_baseline(y_train, len(decided.Y))
    base = classification_metrics(decided.Y, baseline, split)
    metrics.update({f"{split}_baseline_f1_{a}": base[f"{split}_f1_{a}"] for a in AVERAGES})
    if split != "val":
        metrics.update(decade_metrics(decided.Y, decided.y_pred, decided.years, split, baseline))
    if decided.y_pred_with_year is not None:
        aware = classification_metrics(decided.Y, decided.y_pred_with_year, split)
        metrics.update({f"{split}_yearaware_f1_{a}": aware[f"{split}_f1_{a}"] for a in AVERAGES})
    return metrics, {f"most_overpredicted_{split}": worst}


def _fit(family: Family, params: dict, config: ExperimentConfig, X, Y, X_val=None, Y_val=None):
    """A fitted classifier. Families that stop early on validation data and get none hold out
    a seeded 10% of ``X`` for it, so out-of-fold scores never see their own labels."""
    classifier = family.classifier(params, config)
    if family.early_stopping and X_val is None and len(X) >= 20:
        rng = np.random.default_rng(config.seed)
        held = np.zeros(len(X), dtype=bool)
        held[rng.choice(len(X), max(2, len(X) // 10), replace=False)] = True
        return classifier.fit(X[~held], Y[~held], X[held], Y[held])
    return classifier.fit(X, Y, X_val, Y_val)


def out_of_fold_scores(family: Family, params: dict, config: ExperimentConfig, X, Y) -> np.ndarray:
    """Scores for every row from a model that never saw it (``config.cv_folds`` folds)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    folds = MultilabelStratifiedKFold(
        n_splits=config.cv_folds, shuffle=True, random_state=config.seed
    )
    scores = np.zeros(Y.shape, dtype=np.float64)
    for k, (fit_rows, held_rows) in enumerate(folds.split(X, Y)):
        log.info("out-of-fold scores: fold %d/%d", k + 1, config.cv_folds)
        scores[held_rows] = _fit(family, params, config, X[fit_rows], Y[fit_rows]).predict_scores(
            X[held_rows]
        )
    return scores


def fit_and_decide(
    family: Family,
    params: dict,
    config: ExperimentConfig,
    features: FeatureSets,
    fitted=None,
):
    """The final model: classifier, fitted decision layer, and honest validation decisions.

    With ``cv_folds`` >= 2 the decision layer is fitted on out-of-fold scores over train+val
    and the classifier is refitted on all of train+val (the ``CalibratedClassifierCV(...,
    ensemble=False)`` recipe); ``val`` metrics are then cross-validated over train+val.
    With ``cv_folds`` = 0 the classifier learns from train and the layer from validation;
    ``fitted``, the search's own classifier for these params, is then used as it is.
    Either way validation decisions are cross-fitted (``cross_fit_predict``).
    """
    X, Y, years = features.X, features.Y, features.years
    if config.cv_folds >= 2:
        X_dev = np.concatenate([X["train"], X["val"]])
        Y_dev = np.concatenate([Y["train"], Y["val"]])
        years_dev = np.concatenate([years["train"], years["val"]])
        dev_scores = out_of_fold_scores(family, params, config, X_dev, Y_dev)
        classifier = _fit(family, params, config, X_dev, Y_dev)
    else:
        Y_dev, years_dev = Y["val"], years["val"]
        classifier = fitted or _fit(
            family, params, config, X["train"], Y["train"], X["val"], Y["val"]
        )
        dev_scores = classifier.predict_scores(X["val"])
    layer = decision_layer(config).fit(dev_scores, Y_dev, years_dev)
    _, dev_pred = cross_fit_predict(layer, dev_scores, Y_dev, seed=config.seed)
    return classifier, layer, Decided(Y_dev, dev_pred, years_dev)


def decide_splits(classifier, layer: DecisionLayer, features: FeatureSets, splits: list[str]):
    """Decisions on held-out splits, without and with the posters' release years."""
    decided = {}
    for split in splits:
        if not len(features.Y.get(split, [])):
            continue
        scores = classifier.predict_scores(features.X[split])
        years = features.years[split]
        with_year = layer.predict(scores, years) if layer.decade_prevalence_ else None
        decided[split] = Decided(features.Y[split], layer.predict(scores), years, with_year)
    return decided


# --------------------------------------------------------------------------- study
def optuna_storage(url: str, attempts: int = 5) -> optuna.storages.BaseStorage | None:
    """Optuna RDB storage for ``url`` (sqlite file by default, PostgreSQL works unchanged).

    Workers started together race to create the schema; the loser's error is transient, so
    initialisation is retried. sqlite gets a generous lock timeout for concurrent writers.
    """
    if not url:
        return None  # in-memory
    from sqlalchemy.exc import SQLAlchemyError

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random() * (attempt + 1))
    return None


def _study(config: ExperimentConfig, parent_run_id: str) -> optuna.Study:
    shared = config.study_name not in ("", "new")
    name = config.study_name if shared else f"{config.family}-{parent_run_id}"
    # Workers sharing a study must not draw the same samples: one seed for all of them made
    # 2 workers x 3 trials try 3 distinct settings. Each worker's seed mixes in its run id.
    seed = config.seed + int(parent_run_id[:8], 16) if shared else config.seed
    return optuna.create_study(
        study_name=name,
        storage=optuna_storage(config.storage),
        direction="minimize" if config.metric.endswith("hamming_loss") else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        load_if_exists=True,
    )


def _objective(
    family: Family,
    config: ExperimentConfig,
    features: FeatureSets,
    study_name: str,
    kept: dict | None = None,
):
    """One trial: fit on train, score validation, decide validation honestly (the decision
    layer cross-fitted over validation folds), log and return ``config.metric``.

    With ``kept``, the best trial's fitted classifier is kept there, so a run without
    out-of-fold refits (``cv_folds`` 0) need not train the winner twice.
    """
    better = min if config.metric.endswith("hamming_loss") else max

    def objective(trial: optuna.Trial) -> float:
        with mlflow.start_run(run_name=f"{family.name} trial {trial.number}", nested=True) as run:
            mlflow.set_tags(
                {
                    ROLE_TAG: "trial",
                    "family": family.name,
                    "optuna_study": study_name,
                    "optuna_trial": trial.number,
                }
            )
            params = family.suggest(trial, config)
            trial.set_user_attr("params", params)
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            mlflow.log_params(params)
            mlflow.set_tag("balanced", str(family.is_balanced(params)).lower())
            start = time.perf_counter()
            X, Y = features.X, features.Y
            classifier = _fit(family, params, config, X["train"], Y["train"], X["val"], Y["val"])
            scores = classifier.predict_scores(X["val"])
            _, y_pred = cross_fit_predict(
                decision_layer(config), scores, Y["val"], seed=config.seed
            )
            decided = Decided(Y["val"], y_pred, features.years["val"])
            metrics, tags = split_metrics(decided, "val", Y["train"])
            metrics["fit_seconds"] = time.perf_counter() - start
            mlflow.log_metrics(metrics)
            mlflow.set_tags(tags)
            value = metrics[config.metric]
            if kept is not None and better(value, kept.get("value", value)) == value:
                kept.update(value=value, params=params, classifier=classifier)
            return value

    return objective


def _best_per_kind(study: optuna.Study) -> dict[str, float]:
    """Best objective value per classifier kind (pca_classic searches the kind)."""
    best: dict[str, float] = {}
    for trial in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]):
        kind = trial.params.get("kind")
        if kind is not None:
            better = max if study.direction.name == "MAXIMIZE" else min
            best[kind] = better(best.get(kind, trial.value), trial.value)
    return best


# --------------------------------------------------------------------------- logging helpers
def plt_close(figure) -> None:
    """Free a logged figure: pyplot keeps every open figure alive otherwise."""
    import matplotlib.pyplot as plt

    plt.close(figure)


def dataset_tags(dataset: PosterDataset) -> dict[str, str]:
    return {
        "dataset": dataset.name,
        "dataset_hash": dataset.content_hash,
        "dataset_root": str(dataset.root),
    }


# MLflow's dataset contexts for the splits (the UI shows one input per split).
SPLIT_CONTEXTS = {
    "train": "training",
    "val": "validation",
    "test": "test",
    "xperiod": "cross-period",
}


def log_dataset(dataset: PosterDataset, splits: Splits) -> None:
    """Which data this run used: tags, one MLflow dataset input per split (its digest covers
    the dataset's content hash and the split's ids, so a capped or re-split run is a
    different input), and the split ids."""
    import hashlib

    mlflow.set_tags(dataset_tags(dataset))
    table = dataset.frame[["poster_id", "year"]].assign(
        genres=dataset.frame["genres"].map("|".join)
    )
    for name, ids in splits.items():
        digest = hashlib.sha256(dataset.content_hash.encode())
        digest.update("\n".join(sorted(map(str, ids))).encode())
        with warnings.catch_warnings():  # MLflow's schema hints about int columns: noise here
            warnings.simplefilter("ignore", UserWarning)
            source = mlflow.data.from_pandas(
                table[table["poster_id"].isin(set(ids))],
                source=str(dataset.root),
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
        path = Path(tmp) / "split_ids.csv"
        splits.to_frame().to_csv(path, index=False)
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
    """Classification reports per split, the per-genre F1 chart and the F1-by-decade curve."""
    from posterml.plots.evaluation import f1_by_decade_figure, per_genre_f1_figure

    for split, result in decided.items():
        mlflow.log_table(report_frame(result.Y, result.y_pred), f"reports/{split}_report.json")
        mlflow.log_text(report_text(result.Y, result.y_pred), f"reports/{split}_report.txt")
    shown = [s for s in ("val", "test", "xperiod") if s in decided]
    figure = per_genre_f1_figure(metrics, shown, f"{family}: F1 per genre")
    mlflow.log_figure(figure, "figures/per_genre_f1.png")
    plt_close(figure)
    held_out = [decided[s] for s in ("test", "xperiod") if s in decided]
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


# The margin a model must clear over "the 2 most frequent genres for every poster".
BASELINE_MARGIN = 0.01


def check_against_baseline(metrics: dict[str, float]) -> bool:
    """Does the model beat the trivial baseline on validation (micro and samples F1) and say
    more than one thing? A run that does not is flagged loudly: a 3-trial search once chose
    gamma_scale 7.97 and shipped "Comedy, Drama" for every poster without a word."""
    beats = (
        all(
            metrics.get(f"val_f1_{a}", 0.0)
            >= metrics.get(f"val_baseline_f1_{a}", 0.0) + BASELINE_MARGIN
            for a in ("micro", "samples")
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
        "| genres/poster (true) | worst over-prediction |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for split in ("val", "test", "xperiod"):
        if f"{split}_f1_micro" not in metrics:
            continue
        f1 = [f"{metrics[f'{split}_f1_{a}']:.3f}" for a in AVERAGES]
        worst = tags.get(f"most_overpredicted_{split}", "")
        lines.append(
            f"| {split} | {' | '.join(f1)} | {metrics[f'{split}_baseline_f1_samples']:.3f} "
            f"| {metrics[f'{split}_genres_per_poster']:.2f} "
            f"({metrics[f'{split}_true_genres_per_poster']:.2f}) "
            f"| {worst} {metrics[f'{split}_max_overprediction']:.1f}x |"
        )
    verdict = "beats" if tags.get("beats_baseline") == "true" else "**does not beat**"
    honest = (
        f"cross-validated over train+val ({config.cv_folds} folds)"
        if config.cv_folds >= 2
        else "validation split, decisions cross-fitted"
    )
    lines += [
        "",
        f"val: {honest}; test and xperiod: held out.",
        f"The model {verdict} the baseline (the 2 most frequent genres for every poster).",
        "Chosen: " + ", ".join(f"`{k}={v}`" for k, v in params.items()) + ".",
        "Figures: `figures/per_genre_f1.png`, `figures/f1_by_decade.png`, "
        "`figures/optuna_history.png`.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the run
def _log_best(study: optuna.Study, family: Family, config: ExperimentConfig) -> dict:
    """Log the winning trial (and the best of each classifier kind); return its params."""
    best = study.best_trial
    best_params = best.user_attrs["params"]
    mlflow.log_params({f"best_{k}": v for k, v in best_params.items()})
    mlflow.log_metric("best_trial_number", best.number)
    mlflow.log_metric(f"best_trial_{config.metric}", best.value)
    for kind, value in _best_per_kind(study).items():
        mlflow.log_metric(f"best_{config.metric}_{kind}", value)
    mlflow.set_tag("balanced", str(family.is_balanced(best_params)).lower())
    return best_params


def _final_evaluation(
    family: Family, params: dict, config: ExperimentConfig, features: FeatureSets, fitted=None
):
    """Refit with the best params, fit the decision layer, then log metrics (with the
    decision statistics, baseline and per-decade F1), reports and figures."""
    start = time.perf_counter()
    classifier, layer, dev = fit_and_decide(family, params, config, features, fitted)
    mlflow.log_metric("refit_seconds", time.perf_counter() - start)
    decided = {"val": dev, **decide_splits(classifier, layer, features, ["test", "xperiod"])}
    metrics, tags = {}, {}
    for split, result in decided.items():
        split_values, split_tags = split_metrics(result, split, features.Y["train"])
        metrics.update(split_values)
        tags.update(split_tags)
    beats = check_against_baseline(metrics)
    tags["beats_baseline"] = str(beats).lower()
    mlflow.log_metrics(metrics)
    mlflow.set_tags(tags)
    log_reports(features, decided, metrics, family.name)
    mlflow.log_dict(layer.to_dict(), "model_decision_rule.json")
    return classifier, layer, metrics, tags


def _log_model(
    family: Family,
    params: dict,
    dataset: PosterDataset,
    features: FeatureSets,
    classifier,
    layer: DecisionLayer,
    run_id: str,
) -> None:
    """Log featurizer + classifier + decision rule as the served pyfunc model."""
    from posterml.serving.pyfunc import PosterPipeline, log_pipeline

    meta = {
        "family": family.name,
        "params": params,
        "featurizer": features.featurizer.params(),
        "dataset": dataset.name,
        "dataset_hash": dataset.content_hash,
        "parent_run_id": run_id,
    }
    pipeline = PosterPipeline(features.featurizer, classifier, layer, meta)
    info = log_pipeline(pipeline, name=family.name)  # the models list names each family
    mlflow.set_tags({"model_id": info.model_id, "model_uri": info.model_uri})


def run_experiment(config: ExperimentConfig, nested: bool = False) -> str:
    """Run one family's search and final evaluation; returns the parent run id."""
    if not config.metric.startswith("val_"):
        raise ValueError(f"metric {config.metric!r}: the search must optimise a val_ metric")
    configure_tracking()
    if config.experiment and not os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_experiment(config.experiment)
    family = get_family(config.family)
    dataset, splits = load_data(config)

    with mlflow.start_run(nested=nested) as parent:
        # Named for what it is, also under `mlflow run` (which starts the run unnamed).
        mlflow.set_tag(
            "mlflow.runName", f"{family.name} · {dataset.name} · {parent.info.run_id[:8]}"
        )
        mlflow.set_tags(
            {
                ROLE_TAG: "experiment",
                "family": family.name,
                "backbone": config.backbone if family.uses_backbone else "none",
                "train_period": str(splits.train_period),
                "test_period": str(splits.test_period),
            }
        )
        log_new_params(config.params())
        log_dataset(dataset, splits)
        for name, ids in splits.items():
            mlflow.log_metric(f"n_{name}", len(ids))

        features = build_features(family, config, dataset, splits)
        log_failures(features.failures)
        mlflow.log_metric("featurize_seconds", features.seconds)
        mlflow.log_params({f"featurizer_{k}": v for k, v in features.featurizer.params().items()})
        if hasattr(features.featurizer, "explained_variance_ratio_"):
            ratio = np.asarray(features.featurizer.explained_variance_ratio_)
            mlflow.log_metric("pca_explained_variance", float(ratio.sum()))

        study = _study(config, parent.info.run_id)
        mlflow.set_tag("optuna_study", study.study_name)
        start = time.perf_counter()
        kept: dict = {} if config.cv_folds < 2 else None
        study.optimize(
            _objective(family, config, features, study.study_name, kept),
            n_trials=config.n_trials,
            timeout=config.timeout or None,
            catch=(ValueError, ArithmeticError),
        )
        mlflow.log_metric("search_seconds", time.perf_counter() - start)
        from posterml.plots.evaluation import optuna_figures

        for name, figure in optuna_figures(study, config.metric).items():
            mlflow.log_figure(figure, f"figures/{name}")
            plt_close(figure)

        best_params = _log_best(study, family, config)
        fitted = kept["classifier"] if kept and kept["params"] == best_params else None
        classifier, layer, metrics, tags = _final_evaluation(
            family, best_params, config, features, fitted
        )
        mlflow.set_tag(
            "mlflow.note.content",
            run_description(config, dataset, splits, best_params, metrics, tags),
        )
        if config.log_model:
            _log_model(
                family, best_params, dataset, features, classifier, layer, parent.info.run_id
            )
        summary = {
            k: round(v, 4)
            for k, v in metrics.items()
            if any(k == f"{s}_f1_{a}" for s in ("val", "test", "xperiod") for a in AVERAGES)
        }
        print(json.dumps({"run_id": parent.info.run_id, "family": family.name, **summary}))
        return parent.info.run_id


def main(family: str, argv: list[str] | None = None, defaults: dict | None = None) -> int:
    """Command-line entry for one family: a user mistake is one clear line, not a traceback.

    An unavailable backbone or an unusable dataset exits with status 2 and the message;
    anything else keeps its traceback.
    """
    import sys

    from posterml.data.dataset import DatasetError
    from posterml.features.backbones import BackboneUnavailableError

    try:
        run_experiment(parse_config(family, argv, defaults))
    except (BackboneUnavailableError, DatasetError) as exc:
        print(f"posterml {family}: {exc}", file=sys.stderr)
        return 2
    return 0
