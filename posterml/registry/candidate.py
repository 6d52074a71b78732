"""Which run competes for ``@champion``: the one candidate both ``register`` doors judge.

Among the finished parent runs of an experiment (balanced ones by default, on the data of
the latest finished run unless asked otherwise), the best by a validation metric whose model
a dealer can trust (``PromotionRule.trust_problems`` in ``posterml.registry.rule``); the runs
passed over keep their reasons, for the message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from posterml.names import (
    BALANCED_TAG,
    DATASET_HASH_TAG,
    DATASET_TAG,
    DEFAULT_OBJECTIVE,
    EXPERIMENT_ROLE,
    MODEL_ID_TAG,
    ROLE_TAG,
)
from posterml.registry.rule import RULE, PromotionRule
from posterml.team.refusals import raise_if_refused


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
class ChampionCandidate:
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
) -> ChampionCandidate:
    """The best run ``rule`` trusts in ``experiment`` by ``metric``: only runs on the data of
    the latest finished run compete, unless ``any_dataset``."""
    experiment_id = resolve_experiment_id(client, experiment)
    data = None if any_dataset else latest_dataset(client, experiment_id)
    skipped: list[str] = []
    run = best_run(client, experiment_id, metric, balanced_only, skipped, data and data[1], rule)
    return ChampionCandidate(experiment_id, run, data, skipped)
