"""Promotion: does the candidate replace ``@champion``? Both doors of ``posterml register``.

* ``register_best`` (``posterml register``): the candidate serves when its validation
  metric beats the champion's.
* ``register_with_reference`` (``register --reference``): the candidate is registered as a
  version, scored with the current champion on the dealer's reference posters the way the
  server scores (``posterml.registry.reference``), both scores logged to each model with the
  reference as an MLflow dataset, and ``mlflow.validate_evaluation_results`` judges it
  against the rule's thresholds. A loser stays ``@challenger`` and says why.

Both pick the same candidate (``candidate.pick_candidate``), keep to one rule
(``rule.RULE``: every limit, declared once) and move the aliases one way
(``versions.make_champion``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from posterml.data.dataset import PosterDataset, load_folder
from posterml.names import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    DATASET_TAG,
    DEFAULT_OBJECTIVE,
    FAMILY_TAG,
    MODEL_NAME,
    SPLIT_IDS_ARTIFACT,
)
from posterml.registry.candidate import pick_candidate
from posterml.registry.reference import PREFIX, ReferenceScore, reference_input, score_reference
from posterml.registry.rule import RULE, PromotionRule
from posterml.registry.versions import (
    current_champion,
    existing_version,
    logged_model_id,
    make_champion,
    register_run_model,
)
from posterml.team.refusals import raise_if_refused


@dataclass
class RegistrationResult:
    changed: bool
    model_name: str
    version: str | None  # registry versions are strings in the REST API; kept as such
    run_id: str | None
    metric_value: float | None
    message: str
    refused: bool = False  # registered, but not promoted: it lost on the reference set


class PromotionError(RuntimeError):
    """Nothing was registered: the run cannot be judged (reference posters in its data)."""


def register_best(
    experiment: str | None = None,
    model_name: str = MODEL_NAME,
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


def register_with_reference(
    reference_folder: str | Path,
    experiment: str | None = None,
    model_name: str = MODEL_NAME,
    metric: str = DEFAULT_OBJECTIVE,
    balanced_only: bool = True,
    any_dataset: bool = False,
    client: MlflowClient | None = None,
    rule: PromotionRule = RULE,
) -> RegistrationResult:
    """Register the best run's model and promote it only if it wins on the reference set."""
    client = client or MlflowClient()
    reference = load_folder(reference_folder)
    candidate = pick_candidate(client, experiment, metric, balanced_only, any_dataset, rule)
    run = candidate.run
    if run is None:
        return RegistrationResult(
            False,
            model_name,
            None,
            None,
            None,
            f"no run to judge: nothing registered.{candidate.passed_over()}",
        )
    check_no_reference_posters(client, run, reference)
    champion = current_champion(client, model_name)
    if champion is not None and champion.run_id == run.info.run_id:
        return RegistrationResult(
            False,
            model_name,
            str(champion.version),
            run.info.run_id,
            None,
            f"the best run's model is already champion v{champion.version}: nothing changed",
        )
    version = existing_version(client, model_name, run.info.run_id) or register_run_model(
        client, run, model_name, metric
    )
    dataset = reference_input(reference)
    score = score_reference(f"models:/{model_name}/{version.version}", reference)
    _log_score(client, version, score, dataset)
    held = None
    if champion is not None:
        held = score_reference(f"models:/{model_name}/{champion.version}", reference)
        _log_score(client, champion, held, dataset)
    passed, failures, thresholds = rule.judge(score, held)
    against = f"champion v{champion.version}" if champion else "Drama + Comedy for every poster"
    summary = (
        f"on the reference set {reference.root} ({len(reference)} posters): "
        f"v{version.version} {_lines(score)}"
        + (f"; champion v{champion.version} {_lines(held)}" if held else "")
    )
    if passed:
        make_champion(client, model_name, version.version, champion)
        client.set_model_version_tag(model_name, version.version, "promotion", "promoted")
        message = f"v{version.version} beat {against} and is now @{CHAMPION_ALIAS}: {summary}"
    else:
        client.set_registered_model_alias(model_name, CHALLENGER_ALIAS, version.version)
        client.set_model_version_tag(model_name, version.version, "promotion", "refused")
        client.set_model_version_tag(
            model_name, version.version, "refused_because", " ".join(failures)[:4900]
        )
        message = (
            f"v{version.version} did not beat {against}; it stays @{CHALLENGER_ALIAS} and "
            f"{'v' + str(champion.version) if champion else 'nothing'} serves. "
            f"Failed: {' '.join(failures)} {summary}"
        )
    rules = "; ".join(f"{name} {t}" for name, t in thresholds.items())
    client.update_model_version(
        model_name, version.version, f"{message}\nRules (MetricThreshold): {rules}"[:5000]
    )
    return RegistrationResult(
        passed,
        model_name,
        str(version.version),
        run.info.run_id,
        score.get("f1_micro"),
        message,
        refused=not passed,
    )


def training_hashes(client: MlflowClient, run_id: str) -> set[str]:
    """The image sha256 of every poster a run's data held (its split_ids artifact)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, SPLIT_IDS_ARTIFACT, tmp)
        except (MlflowException, OSError) as exc:
            raise_if_refused(exc)
            raise PromotionError(
                f"run {run_id} has no {SPLIT_IDS_ARTIFACT}: it cannot be checked against the "
                "reference set; retrain it with this posterml"
            ) from None
        table = pd.read_csv(path, dtype=str)
    if "image_sha256" not in table:
        raise PromotionError(
            f"run {run_id} predates image hashes in {SPLIT_IDS_ARTIFACT}: it cannot be checked "
            "against the reference set by content; retrain it with this posterml"
        )
    return set(table["image_sha256"].dropna())


def check_no_reference_posters(client: MlflowClient, run, reference: PosterDataset) -> None:
    """Refuse a run whose data shares any image with the reference set."""
    shared = training_hashes(client, run.info.run_id) & set(reference.frame["image_sha256"])
    if shared:
        ids = reference.frame.loc[reference.frame["image_sha256"].isin(shared), "poster_id"]
        raise PromotionError(
            f"run {run.info.run_id} was trained on data holding {len(shared)} poster(s) of the "
            f"reference set {reference.root} (reference poster_id {', '.join(ids[:5])}"
            f"{' ...' if len(ids) > 5 else ''}): a model is never judged on posters it saw. "
            "Remove them from the training data and retrain"
        )


def _log_score(client: MlflowClient, version, score: ReferenceScore, dataset) -> None:
    """The reference metrics on the version's training run, linked to its logged model and
    the reference dataset; the headline as version tags, for the registry page."""
    mlflow.log_metrics(
        score.metrics, run_id=version.run_id, model_id=logged_model_id(version), dataset=dataset
    )
    for name, value in score.headline().items():
        client.set_model_version_tag(
            version.name, version.version, f"{PREFIX}_{name}", f"{value:.4f}"
        )
    client.set_model_version_tag(version.name, version.version, "reference_digest", dataset.digest)


def _lines(score: ReferenceScore) -> str:
    def get(name: str) -> str:
        value = score.get(name)
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"micro {get('f1_micro')}, samples {get('f1_samples')}, pre-1980 micro "
        f"{get('f1_micro_pre1980')} (baseline {get('baseline_f1_micro_pre1980')}), genres/poster "
        f"{get('genres_per_poster')} vs {get('true_genres_per_poster')} true"
    )
