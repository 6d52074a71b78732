"""One experiment run, top to bottom.

data -> splits -> features -> Optuna study (one nested MLflow run per trial) -> refit with the
best hyperparameters behind the decision layer -> val/test/cross-period metrics, reports and
figures -> the deployable pipeline logged on the parent run. Families only say how to
featurize, what to search and how to build a classifier (``posterml.modeling.families``).
"""

from __future__ import annotations

import json
import logging
import os
import time

import mlflow

from posterml.classifiers.pipeline import PosterPipeline
from posterml.evaluation.metrics import AVERAGES
from posterml.modeling.evaluate import check_against_baseline, headline, split_metrics
from posterml.modeling.families import Family, get_family
from posterml.modeling.fitting import Views, decide_splits, fit_and_decide
from posterml.modeling.inputs import FeatureSets, build_features, load_data
from posterml.modeling.report import (
    log_dataset,
    log_failures,
    log_figures,
    log_reports,
    run_description,
)
from posterml.modeling.settings import DETAIL_VIEW, ExperimentConfig, view_parts
from posterml.modeling.study import (
    create_study,
    default_storage,
    log_best,
    trial_objective,
)
from posterml.names import (
    BACKBONE_TAG,
    BEATS_BASELINE_TAG,
    DECISION_RULE_FILE,
    EXPERIMENT_ROLE,
    FAMILY_TAG,
    MODEL_ID_TAG,
    MODEL_URI_TAG,
    ROLE_TAG,
)
from posterml.tracking import configure_tracking, log_new_params, redacted_url

log = logging.getLogger("posterml")


def run_experiment(config: ExperimentConfig, nested: bool = False) -> str:
    """Run one family's search and final evaluation; returns the parent run id."""
    if not config.objective.startswith("val_"):
        raise ValueError(f"objective {config.objective!r}: the search must optimise a val_ metric")
    tracking_uri = configure_tracking()
    if config.experiment and not os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_experiment(config.experiment)
    family = get_family(config.family, config.options)
    dataset, splits = load_data(config)
    # Before the hour of feature extraction: a data set too large for memory stops here.
    # The detail view fits the same head a second time, on the crops' features.
    feature_sets = 2 if DETAIL_VIEW in view_parts(config.views) else 1
    n_dev, n_total = len(splits.train) + len(splits.val), sum(len(i) for _, i in splits.items())
    plan = family.plan(n_dev, n_total, feature_sets)

    with mlflow.start_run(nested=nested) as parent:
        run_id = parent.info.run_id
        # Named for what it is, also under `mlflow run` (which starts the run unnamed).
        mlflow.set_tag("mlflow.runName", f"{family.name} · {dataset.name} · {run_id[:8]}")
        backbone = getattr(config.options, "backbone", "none")  # the registry shows it
        mlflow.set_tags(
            {ROLE_TAG: EXPERIMENT_ROLE, FAMILY_TAG: family.name, BACKBONE_TAG: backbone}
        )
        mlflow.set_tags({"train_period": splits.train_period, "test_period": splits.test_period})
        log_new_params(config.params())
        log_dataset(dataset, splits)
        if plan is not None:
            mlflow.set_tags(plan.tags())
            (log.warning if plan.switched else log.info)("%s head: %s", plan.head, plan.reason)

        features = build_features(family, dataset, splits, config.views)
        log_failures(features.failures)
        mlflow.log_metric("featurize_seconds", features.seconds)
        mlflow.log_params({f"featurizer_{k}": v for k, v in features.featurizer.params().items()})
        mlflow.log_metrics(features.featurizer.summary())
        if features.reader is not None:
            mlflow.log_params(features.reader.params())

        storage = config.storage or default_storage(tracking_uri)
        study = create_study(config, run_id, storage)
        mlflow.set_tags({"optuna_study": study.study_name, "optuna_storage": redacted_url(storage)})
        start = time.perf_counter()
        kept: dict | None = {} if config.cv_folds < 2 else None
        study.optimize(
            trial_objective(family, config, features, kept),
            n_trials=config.n_trials,
            timeout=config.timeout or None,
            catch=(ValueError, ArithmeticError),
        )
        mlflow.log_metric("search_seconds", time.perf_counter() - start)
        log_figures(study, config.objective)
        params = log_best(study, family, config.objective)

        fitted = kept["classifier"] if kept and kept["params"] == params else None
        start = time.perf_counter()
        classifier, layer, dev, views = fit_and_decide(family, params, config, features, fitted)
        mlflow.log_metric("refit_seconds", time.perf_counter() - start)
        held_out = decide_splits(classifier, layer, features, ["test", "cross_period"], views)
        decided = {"val": dev, **held_out}
        metrics, tags = {}, {}
        for split, result in decided.items():
            split_values, split_tags = split_metrics(result, split, features.Y["train"])
            metrics.update(split_values)
            tags.update(split_tags)
        tags[BEATS_BASELINE_TAG] = str(check_against_baseline(metrics)).lower()
        mlflow.log_metrics(headline(metrics))
        mlflow.set_tags(tags)
        log_reports(features, decided, metrics, family.name)
        mlflow.log_dict(layer.to_dict(), DECISION_RULE_FILE)
        description = run_description(config, dataset, splits, params, metrics, tags)
        mlflow.set_tag("mlflow.note.content", description)

        if config.log_model:
            log_model(family, params, dataset, features, classifier, layer, run_id, views)
        summary = {
            k: round(v, 4)
            for k, v in metrics.items()
            if any(k == f"{s}_f1_{a}" for s in ("val", "test", "cross_period") for a in AVERAGES)
        }
        print(json.dumps({"run_id": run_id, "family": family.name, **summary}))
        return run_id


def log_model(
    family: Family,
    params: dict,
    dataset,
    features: FeatureSets,
    classifier,
    layer,
    run_id: str,
    views: Views | None = None,
) -> None:
    """Log featurizer + classifier + decision rule as the served pyfunc model."""
    from posterml.serving.pyfunc import log_pipeline

    meta = {
        "family": family.name,
        "params": params,
        "featurizer": features.featurizer.params(),
        "dataset": dataset.name,
        "dataset_hash": dataset.content_hash,
        "parent_run_id": run_id,
        "views": views.name if views is not None else "image",
    }
    text, detail = (views.text, views.detail) if views is not None else (None, None)
    pipeline = PosterPipeline(features.featurizer, classifier, layer, meta, text, detail)
    info = log_pipeline(pipeline, name=family.name)  # the models list names each family
    mlflow.set_tags({MODEL_ID_TAG: info.model_id, MODEL_URI_TAG: info.model_uri})
