"""Register the best balanced model and point the alias ``champion`` at it.

The study's headline model is the "balanced" one (rare genres reweighted). Among the parent
runs of an experiment tagged ``balanced=true`` we pick the best by a validation metric,
register its logged model, move ``champion`` to it and keep the old champion as
``previous``. Rerunning when nothing better exists changes nothing.

Only a model a dealer can trust qualifies (``PromotionRule.trust_problems`` in
``posterml.registry.rule``): it beats the trivial baseline on validation, predicts about as
many genres per poster as the truth has, and predicts no genre for far more posters than
have it. A run that fails is skipped with its reason, however high its F1.

Both doors of ``posterml register`` share this module's two steps: ``pick_candidate`` (which
run competes) and ``make_champion`` (the alias move). ``posterml register`` promotes the
candidate when its validation metric beats the champion's; ``--reference``
(``posterml.registry.promotion``) when it wins on the reference set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from posterml.names import (
    BACKBONE_TAG,
    BALANCED_TAG,
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    DATASET_HASH_TAG,
    DATASET_TAG,
    DEFAULT_OBJECTIVE,
    EXPERIMENT_ROLE,
    FAMILY_TAG,
    MODEL_ID_TAG,
    MODEL_NAME,
    PREVIOUS_ALIAS,
    PREVIOUS_CHAMPION_TAG,
    ROLE_TAG,
)
from posterml.registry.rule import RULE, PromotionRule
from posterml.team.refusals import hides_absence, raise_if_refused

DEFAULT_MODEL_NAME = MODEL_NAME
SUMMARY_METRICS = (
    "val_f1_weighted",
    "val_f1_micro",
    "val_f1_macro",
    "val_f1_samples",
    "test_f1_weighted",
    "test_f1_micro",
    "test_f1_macro",
    "test_f1_samples",
    "cross_period_f1_weighted",
    "cross_period_f1_micro",
    "cross_period_baseline_f1_micro",
    "test_genres_per_poster",
    "test_true_genres_per_poster",
    "test_max_overprediction",
)


@dataclass
class RegistrationResult:
    changed: bool
    model_name: str
    version: str | None  # registry versions are strings in the REST API; kept as such
    run_id: str | None
    metric_value: float | None
    message: str
    refused: bool = False  # registered, but not promoted: it lost on the reference set


def resolve_experiment_id(client: MlflowClient, experiment: str | None) -> str:
    """An experiment by name or id; by default the one this process runs in, else the one
    holding the latest finished experiment run (what the user trained last), else Default."""
    if experiment in (None, "", "current"):
        env_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
        if env_id:
            return env_id
        active = mlflow.active_run()
        if active:
            return active.info.experiment_id
        latest = _latest_experiment_run(client)
        if latest is not None:
            return latest.info.experiment_id
        experiment = "Default"
    found = client.get_experiment_by_name(experiment)
    if found is None:
        try:
            found = client.get_experiment(experiment)
        except MlflowException as exc:
            raise_if_refused(exc)
            found = None
    if found is None:
        raise ValueError(f"no MLflow experiment named {experiment!r}")
    return found.experiment_id


FINISHED_EXPERIMENT_RUNS = (
    f"tags.`{ROLE_TAG}` = '{EXPERIMENT_ROLE}' and attributes.status = 'FINISHED'"
)


def _latest_experiment_run(client: MlflowClient, experiment_ids: list[str] | None = None):
    """The latest finished posterml experiment run (in any experiment by default), or None."""
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        experiment_ids,
        FINISHED_EXPERIMENT_RUNS,
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def latest_dataset(client: MlflowClient, experiment_id: str) -> tuple[str, str] | None:
    """(name, content hash) of the data the latest finished experiment run used, or None.

    Validation F1 on the synthetic set and on real posters are not comparable: by default
    ``register`` compares only runs on the data the user trained on last."""
    latest = _latest_experiment_run(client, [experiment_id])
    if latest is None or not latest.data.tags.get(DATASET_HASH_TAG):
        return None
    tags = latest.data.tags
    return tags.get(DATASET_TAG, ""), tags[DATASET_HASH_TAG]


def best_run(
    client: MlflowClient,
    experiment_id: str,
    metric: str,
    balanced_only: bool = True,
    skipped: list[str] | None = None,
    dataset_hash: str | None = None,
    rule: PromotionRule = RULE,
):
    """The finished parent run with the highest ``metric`` that logged a model a dealer can
    trust (``rule.trust_problems``), or None; runs passed over are described in ``skipped``.
    With ``dataset_hash``, only runs on that data compete."""
    filters = [FINISHED_EXPERIMENT_RUNS]
    if balanced_only:
        filters.append(f"tags.{BALANCED_TAG} = 'true'")
    if dataset_hash:
        filters.append(f"tags.{DATASET_HASH_TAG} = '{dataset_hash}'")
    runs = client.search_runs(
        [experiment_id],
        " and ".join(filters),
        order_by=[f"metrics.`{metric}` DESC"],
        max_results=200,
    )
    for run in runs:
        if metric not in run.data.metrics or not run.data.tags.get(MODEL_ID_TAG):
            continue
        problems = rule.trust_problems(run)
        if not problems:
            return run
        if skipped is not None:
            skipped.append(f"run {run.info.run_id}: " + "; ".join(problems))
    return None


@dataclass
class Candidate:
    """The run both doors of ``register`` judge, and how it was found."""

    experiment_id: str
    run: Run | None  # the best trustworthy run (an mlflow Run), None when there is none
    dataset: tuple[str, str] | None  # (name, hash) of the data that competed; None: any
    skipped: list[str]  # the runs passed over, each with its reasons

    def passed_over(self, limit: int = 5) -> str:
        """The first ``limit`` runs passed over, for a message ("" when none)."""
        if not self.skipped:
            return ""
        more = "" if len(self.skipped) <= limit else " ..."
        return " Passed over: " + " | ".join(self.skipped[:limit]) + more


def pick_candidate(
    client: MlflowClient,
    experiment: str | None,
    metric: str = DEFAULT_OBJECTIVE,
    balanced_only: bool = True,
    any_dataset: bool = False,
    rule: PromotionRule = RULE,
) -> Candidate:
    """The best run ``rule`` trusts in ``experiment`` by ``metric``: only runs on the data of
    the latest finished run compete, unless ``any_dataset``."""
    experiment_id = resolve_experiment_id(client, experiment)
    data = None if any_dataset else latest_dataset(client, experiment_id)
    skipped: list[str] = []
    run = best_run(client, experiment_id, metric, balanced_only, skipped, data and data[1], rule)
    return Candidate(experiment_id, run, data, skipped)


def make_champion(client: MlflowClient, model_name: str, version, champion) -> None:
    """Point ``@champion`` at ``version``; the old ``champion`` (a version, or None) becomes
    ``@previous`` and is named on the new version (``rollback`` steps back by it). A
    ``@challenger`` on ``version`` goes: it serves now."""
    if champion is not None:
        client.set_registered_model_alias(model_name, PREVIOUS_ALIAS, champion.version)
        client.set_model_version_tag(
            model_name, version, PREVIOUS_CHAMPION_TAG, str(champion.version)
        )
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
    challenger = version_by_alias(client, model_name, CHALLENGER_ALIAS)
    if challenger is not None and str(challenger.version) == str(version):
        client.delete_registered_model_alias(model_name, CHALLENGER_ALIAS)


def register_best(
    experiment: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    metric: str = DEFAULT_OBJECTIVE,
    balanced_only: bool = True,
    client: MlflowClient | None = None,
    any_dataset: bool = False,
    rule: PromotionRule = RULE,
) -> RegistrationResult:
    """Register the best run's model as ``model_name`` and move ``champion`` to it.

    Only runs on the data of the latest finished run compete, unless ``any_dataset``."""
    client = client or MlflowClient()
    candidate = pick_candidate(client, experiment, metric, balanced_only, any_dataset, rule)
    run, data = candidate.run, candidate.dataset
    if run is None:
        kind = "balanced " if balanced_only else ""
        if data:
            kind += f"{data[0]!r} "
        return RegistrationResult(
            False,
            model_name,
            None,
            None,
            None,
            f"no finished {kind}run with metric {metric}, a logged model and trustworthy "
            f"decisions in experiment {candidate.experiment_id}: nothing registered."
            f"{candidate.passed_over()} Run "
            "e.g. `mlflow run . -P data=FOLDER` (the recommended recipe) or `mlflow run . -e "
            "resnet_svm -P class_weight=balanced`, or register the best run of any kind with "
            "`-P balanced_only=false`.",
        )
    value = run.data.metrics[metric]
    champion = current_champion(client, model_name)
    if champion is not None:
        held = champion.tags.get(metric)
        if champion.run_id == run.info.run_id or (held is not None and float(held) >= value):
            return RegistrationResult(
                False,
                model_name,
                str(champion.version),
                champion.run_id,
                float(held) if held else None,
                f"champion v{champion.version} ({metric}={held}) is "
                f"already at least as good: nothing changed",
            )
    version = register_run_model(client, run, model_name, metric)
    make_champion(client, model_name, version.version, champion)
    return RegistrationResult(
        True,
        model_name,
        str(version.version),
        run.info.run_id,
        value,
        f"registered {model_name} v{version.version} from run {run.info.run_id} "
        f"({run.data.tags.get(FAMILY_TAG)} on {run.data.tags.get(DATASET_TAG)}, "
        f"{metric}={value:.4f}) as @{CHAMPION_ALIAS}",
    )


def _exists(client: MlflowClient, name: str) -> bool:
    try:
        client.get_registered_model(name)
        return True
    except MlflowException as exc:
        raise_if_refused(exc)  # not readable is not absent
        return False


def register_run_model(client: MlflowClient, run, model_name: str, metric: str):
    """A new registry version of the model ``run`` logged, with its summary as tags."""
    if not _exists(client, model_name):
        client.create_registered_model(
            model_name, description="Movie poster -> TMDb genres (base64 image in, genres out)."
        )
    model_id = run.data.tags[MODEL_ID_TAG]
    # register_model (not create_model_version) also marks the logged model as registered,
    # so its page in the UI links to the version instead of saying "Not registered".
    version = mlflow.register_model(
        f"models:/{model_id}", model_name, tags=_version_tags(run, metric)
    )
    client.update_model_version(model_name, version.version, _description(run, metric))
    return client.get_model_version(model_name, version.version)


def version_by_alias(client: MlflowClient, name: str, alias: str):
    """The version ``alias`` points at, or None when the model or the alias does not exist;
    a refusal (the team server's 403) is raised, unless it only hides a missing model."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if not hides_absence(exc, name):
            raise_if_refused(exc)
        return None


def current_champion(client: MlflowClient, name: str):
    """The version ``@champion`` points at, or None."""
    return version_by_alias(client, name, CHAMPION_ALIAS)


def _version_tags(run, metric: str) -> dict[str, str]:
    tags = {
        k: run.data.tags.get(k, "")
        for k in (
            FAMILY_TAG,
            BACKBONE_TAG,
            BALANCED_TAG,
            DATASET_TAG,
            DATASET_HASH_TAG,
            "train_period",
            "test_period",
        )
    }
    for name in {metric, *SUMMARY_METRICS}:
        if name in run.data.metrics:
            tags[name] = f"{run.data.metrics[name]:.4f}"
    tags["selected_by"] = metric
    return tags


def _description(run, metric: str) -> str:
    m = run.data.metrics
    parts = [f"{k}={m[k]:.3f}" for k in SUMMARY_METRICS if k in m]
    return (
        f"{run.data.tags.get('family')} on {run.data.tags.get('dataset')} "
        f"(backbone {run.data.tags.get('backbone')}), selected by {metric}. " + ", ".join(parts)
    )
