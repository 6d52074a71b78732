"""The Optuna side of a run: where studies live, one nested MLflow run per trial.

Storage defaults to ``optuna.db`` beside the user's sqlite tracking store (``mlflow.db``), so
``optuna-dashboard sqlite:///optuna.db`` finds it where the runs are; a PostgreSQL URL lets
workers on many machines share one study (heartbeats fail a dead worker's trial, which is
then retried once by another worker).
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import mlflow
import optuna

from posterml.cache_dir import cache_dir
from posterml.evaluation.decision import cross_fit_predict
from posterml.modeling.evaluate import headline, split_metrics
from posterml.modeling.families import Family
from posterml.modeling.fitting import Decided, decision_layer, fit_classifier
from posterml.modeling.inputs import FeatureSets
from posterml.modeling.settings import ExperimentConfig
from posterml.names import BALANCED_TAG, FAMILY_TAG, ROLE_TAG, TRIAL_ROLE

# A worker that stops sending heartbeats for HEARTBEAT_GRACE seconds is considered dead:
# its running trial is marked failed and re-queued once.
HEARTBEAT_INTERVAL = 60
HEARTBEAT_GRACE = 180


def default_storage(tracking_uri: str) -> str:
    """``optuna.db`` beside a sqlite tracking store; under the posterml cache otherwise
    (a tracking server or PostgreSQL tracking store has no folder of ours to write to)."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        path = Path(tracking_uri[len(prefix) :]).expanduser().resolve()
        return f"{prefix}{path.with_name('optuna.db')}"
    return f"{prefix}{cache_dir() / 'optuna.db'}"


def optuna_storage(
    url: str,
    attempts: int = 5,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = HEARTBEAT_GRACE,
) -> optuna.storages.BaseStorage:
    """Optuna RDB storage for ``url`` (sqlite or PostgreSQL), with heartbeats.

    Workers started together race to create the schema; the loser's error is transient, so
    initialisation is retried. sqlite gets a generous lock timeout for concurrent writers.
    """
    if url in ("memory", ":memory:"):
        return optuna.storages.InMemoryStorage()
    from sqlalchemy.exc import SQLAlchemyError

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=retry,
                )
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random() * (attempt + 1))
    raise AssertionError("unreachable")


def minimises(objective: str) -> bool:
    return objective.endswith("hamming_loss")


def create_study(config: ExperimentConfig, parent_run_id: str, storage_url: str) -> optuna.Study:
    """This run's study: a fresh one, or the shared ``study_name`` other workers also load."""
    shared = bool(config.study_name)
    name = config.study_name if shared else f"{config.family}-{parent_run_id}"
    # Workers sharing a study must not draw the same samples: one seed for all of them made
    # 2 workers x 3 trials try 3 distinct settings. Each worker's seed mixes in its run id.
    seed = config.seed + int(parent_run_id[:8], 16) if shared else config.seed
    return optuna.create_study(
        study_name=name,
        storage=optuna_storage(storage_url),
        direction="minimize" if minimises(config.objective) else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        load_if_exists=True,
    )


def trial_objective(
    family: Family,
    config: ExperimentConfig,
    features: FeatureSets,
    kept: dict | None = None,
) -> Callable[[optuna.Trial], float]:
    """One trial: fit on train, score validation, decide validation honestly (the decision
    layer cross-fitted over validation folds), log and return ``config.objective``.

    With ``kept``, the best trial's fitted classifier is kept there, so a run without
    out-of-fold refits (``cv_folds`` 0) need not train the winner twice.
    """
    better = min if minimises(config.objective) else max

    def objective(trial: optuna.Trial) -> float:
        run_name = f"{family.name} trial {trial.number}"
        with mlflow.start_run(run_name=run_name, nested=True) as run:
            mlflow.set_tags(
                {
                    ROLE_TAG: TRIAL_ROLE,
                    FAMILY_TAG: family.name,
                    "optuna_study": trial.study.study_name,
                    "optuna_trial": trial.number,
                }
            )
            params = family.suggest(trial)
            trial.set_user_attr("params", params)
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            mlflow.log_params(params)
            mlflow.set_tag(BALANCED_TAG, str(family.is_balanced(params)).lower())
            start = time.perf_counter()
            X, Y = features.X, features.Y
            classifier = fit_classifier(
                family, params, config.seed, X["train"], Y["train"], X["val"], Y["val"]
            )
            scores = classifier.predict_scores(X["val"])
            _, y_pred, maybe = cross_fit_predict(
                decision_layer(config), scores, Y["val"], seed=config.seed
            )
            decided = Decided(Y["val"], y_pred, features.years["val"], maybe=maybe)
            metrics, tags = split_metrics(decided, "val", Y["train"])
            value = metrics[config.objective]
            metrics = headline(metrics)  # a trial keeps the averages, not 19 genres x 4
            metrics["fit_seconds"] = time.perf_counter() - start
            mlflow.log_metrics(metrics)
            mlflow.set_tags(tags)
            if kept is not None and better(value, kept.get("value", value)) == value:
                kept.update(value=value, params=params, classifier=classifier)
            return value

    return objective


def best_per_kind(study: optuna.Study) -> dict[str, float]:
    """Best objective value per classifier kind (pca_classic searches the kind)."""
    best: dict[str, float] = {}
    better = max if study.direction.name == "MAXIMIZE" else min
    for trial in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]):
        kind = trial.params.get("kind")
        if kind is not None:
            best[kind] = better(best.get(kind, trial.value), trial.value)
    return best


def log_best(study: optuna.Study, family: Family, objective: str) -> dict:
    """Log the winning trial (and the best of each classifier kind); return its params."""
    best = study.best_trial
    best_params = best.user_attrs["params"]
    mlflow.log_params({f"best_{k}": v for k, v in best_params.items()})
    mlflow.log_metric("best_trial_number", best.number)
    mlflow.log_metric(f"best_trial_{objective}", best.value)
    for kind, value in best_per_kind(study).items():
        mlflow.log_metric(f"best_{objective}_{kind}", value)
    mlflow.set_tag(BALANCED_TAG, str(family.is_balanced(best_params)).lower())
    return best_params
