"""Registry versions and their aliases: a run's model registered as a version, a version
found by alias, ``@champion`` moved to it (the one alias move) and moved back (``rollback``).

``@champion`` serves; the champion it replaced is ``@previous`` (``rollback`` steps back by
it); a version that lost on the reference set is ``@challenger``.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from posterml.names import (
    BACKBONE_TAG,
    BALANCED_TAG,
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    DATASET_HASH_TAG,
    DATASET_TAG,
    FAMILY_TAG,
    MODEL_ID_TAG,
    MODEL_NAME,
    PREVIOUS_ALIAS,
    PREVIOUS_CHAMPION_TAG,
)
from posterml.team.refusals import hides_absence, raise_if_refused

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


def existing_version(client: MlflowClient, model_name: str, run_id: str):
    """A version already registered from ``run_id`` (a challenger judged again), or None."""
    try:
        found = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    except MlflowException as exc:
        raise_if_refused(exc)
        return None
    return max(found, key=lambda v: int(v.version)) if found else None


def logged_model_id(version) -> str | None:
    """The logged model (``m-...``) a registry version was made from; the sqlite registry
    leaves ``ModelVersion.model_id`` empty, its ``source`` names the model."""
    if version.model_id:
        return version.model_id
    source = version.source or ""
    return source.removeprefix("models:/") if source.startswith("models:/m-") else None


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


@dataclass
class RollbackResult:
    champion: str
    replaced: str
    message: str


def rollback(model_name: str = MODEL_NAME, client: MlflowClient | None = None) -> RollbackResult:
    """Move ``@champion`` back to ``@previous``; ``@previous`` steps one further back (the
    champion that version had replaced), or goes away. Raises ``LookupError`` without one."""
    client = client or MlflowClient()
    champion = current_champion(client, model_name)
    previous = version_by_alias(client, model_name, PREVIOUS_ALIAS)
    if champion is None or previous is None:
        raise LookupError(
            f"{model_name} has no @{PREVIOUS_ALIAS} version to roll back to"
            + ("" if champion else f" (and no @{CHAMPION_ALIAS})")
        )
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, previous.version)
    before = previous.tags.get(PREVIOUS_CHAMPION_TAG)
    if before and before != str(champion.version):
        client.set_registered_model_alias(model_name, PREVIOUS_ALIAS, before)
    else:
        client.delete_registered_model_alias(model_name, PREVIOUS_ALIAS)
    client.set_model_version_tag(model_name, champion.version, "promotion", "rolled back")
    return RollbackResult(
        str(previous.version),
        str(champion.version),
        f"@{CHAMPION_ALIAS} is v{previous.version} again (v{champion.version} rolled back)",
    )
