"""Registering the best balanced run: selection, aliases, idempotence (real sqlite registry)."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from posterml.genres import GENRES
from posterml.names import ROLE_TAG
from posterml.registry.promotion import register_best
from posterml.registry.rule import RULE, PromotionRule


class _Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


TRUSTWORTHY = {"val_genres_per_poster": 2.5, "val_true_genres_per_poster": 2.4}


def _parent_run(
    name: str,
    f1: float,
    balanced: bool,
    beats_baseline: bool = True,
    stats: dict | None = None,
    dataset: str = "synthetic",
) -> str:
    """A finished parent run with a logged model, as the runner leaves it."""
    with mlflow.start_run(run_name=name) as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=_Constant())
        mlflow.set_tags(
            {
                ROLE_TAG: "experiment",
                "family": "resnet_svm",
                "balanced": str(balanced).lower(),
                "model_id": info.model_id,
                "dataset": dataset,
                "dataset_hash": f"hash-of-{dataset}",
                "beats_baseline": str(beats_baseline).lower(),
                "most_overpredicted_val": "TV Movie",
            }
        )
        mlflow.log_metrics({"val_f1_weighted": f1, "test_f1_weighted": f1 - 0.05})
        mlflow.log_metrics(stats or TRUSTWORTHY)
    return run.info.run_id


@pytest.fixture
def experiment(tracking_uri):
    mlflow.set_experiment("registry-test")
    return "registry-test"


@pytest.mark.slow
def test_picks_the_best_balanced_run_and_is_idempotent(experiment):
    _parent_run("unbalanced-but-higher", 0.9, balanced=False)
    good = _parent_run("balanced", 0.6, balanced=True)
    _parent_run("balanced-worse", 0.5, balanced=True)
    with mlflow.start_run(run_name="trial", nested=False):  # trials never qualify
        mlflow.set_tags({ROLE_TAG: "trial", "balanced": "true"})
        mlflow.log_metric("val_f1_weighted", 0.99)

    result = register_best(experiment)
    assert result.changed and result.run_id == good and result.version == "1"
    client = MlflowClient()
    champion = client.get_model_version_by_alias("poster-genre-classifier", "champion")
    assert champion.run_id == good
    assert champion.tags["val_f1_weighted"] == "0.6000" and champion.tags["balanced"] == "true"
    assert "val_f1_weighted=0.600" in champion.description
    # The logged model knows its version (its page in the UI says "registered").
    logged = client.get_logged_model(client.get_run(good).data.tags["model_id"])
    assert '"name": "poster-genre-classifier"' in logged.tags["mlflow.modelVersions"]

    again = register_best(experiment)
    assert not again.changed
    assert len(client.search_model_versions("name='poster-genre-classifier'")) == 1


@pytest.mark.slow
def test_a_better_run_takes_champion_and_keeps_previous(experiment):
    first = _parent_run("first", 0.6, balanced=True)
    register_best(experiment)
    better = _parent_run("better", 0.7, balanced=True)
    result = register_best(experiment, model_name="poster-genre-classifier")
    assert result.changed and result.run_id == better
    client = MlflowClient()
    assert client.get_model_version_by_alias("poster-genre-classifier", "champion").run_id == better
    assert client.get_model_version_by_alias("poster-genre-classifier", "previous").run_id == first


@pytest.mark.slow
def test_nothing_to_register_says_what_to_do(experiment):
    _parent_run("unbalanced", 0.9, balanced=False)
    result = register_best(experiment)
    assert not result.changed and result.version is None
    assert "class_weight=balanced" in result.message
    assert register_best(experiment, balanced_only=False).changed


def test_unknown_experiment_is_a_clear_error(tracking_uri):
    with pytest.raises(ValueError, match="no MLflow experiment named 'nope'"):
        register_best("nope")


@pytest.mark.slow
def test_untrustworthy_runs_are_passed_over_with_their_reason(experiment):
    """The served model that called 46% of posters "TV Movie" had the best weighted F1."""
    _parent_run(
        "tv-movie-for-everyone",
        0.9,
        balanced=True,
        stats={**TRUSTWORTHY, "val_genres_per_poster": 4.1, "val_max_overprediction": 40.0},
    )
    _parent_run("constant", 0.8, balanced=True, beats_baseline=False)
    good = _parent_run("honest", 0.5, balanced=True)
    assert register_best(experiment).run_id == good

    mlflow.set_experiment("registry-test-2")
    _parent_run(
        "only-bad", 0.9, balanced=True, stats={**TRUSTWORTHY, "val_max_overprediction": 40.0}
    )
    result = register_best("registry-test-2", model_name="other")
    assert not result.changed
    assert "TV Movie 40.0x" in result.message


@pytest.mark.slow
def test_only_runs_on_the_latest_runs_data_compete(experiment):
    """Validation F1 on the synthetic set says nothing next to F1 on real posters."""
    _parent_run("synthetic-high", 0.95, balanced=True, dataset="synthetic")
    real = _parent_run("posters", 0.55, balanced=True, dataset="posters")
    result = register_best(experiment)
    assert result.run_id == real and "on posters" in result.message
    assert register_best(experiment, any_dataset=True).run_id != real


@pytest.mark.slow
def test_register_finds_the_experiment_of_the_latest_run(tracking_uri, monkeypatch):
    """`posterml register` after `mlflow run . --experiment-name posterml` needs no flag."""
    mlflow.set_experiment("posterml")
    good = _parent_run("recipe", 0.6, balanced=True)
    mlflow.set_experiment("Default")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    assert register_best("current").run_id == good


@pytest.mark.slow
def test_both_register_paths_pass_over_a_talkative_run_by_one_rule(experiment, tmp_path):
    """`register` and `register --reference` pick their candidate in one place, by one rule:
    a run asserting 30% more genres than the truth is passed over by both, with one reason,
    and a rule allowing 35% lets it compete on both."""
    from posterml.data.synthetic import write_synthetic
    from posterml.registry.promotion import register_with_reference

    reference = write_synthetic(tmp_path / "reference", n=12, seed=5)
    talkative = _parent_run(
        "talkative",
        0.9,
        balanced=True,
        stats={"val_genres_per_poster": 3.12, "val_true_genres_per_poster": 2.4},
    )
    reason = f"run {talkative}: predicts 3.12 genres per poster against 2.40 true"
    plain = register_best(experiment)
    judged = register_with_reference(reference, experiment)
    assert plain.version is None and reason in plain.message, plain.message
    assert judged.version is None and reason in judged.message, judged.message
    loose = PromotionRule(max_genres_excess=0.35)
    assert register_best(experiment, rule=loose).run_id == talkative


@pytest.mark.slow
@pytest.mark.parametrize("ratio, trusted", [(1.2, True), (1.3, False)])
def test_validation_and_reference_share_the_genres_per_poster_limit(experiment, ratio, trusted):
    """The limit on asserted genres per poster is one number in one unit: the validation
    check (`register`) and the reference thresholds (`register --reference`) agree on it."""
    from posterml.registry.reference import ReferenceScore, reference_metrics

    y_true = np.zeros((10, len(GENRES)), dtype=int)
    y_true[:, :2] = 1  # 2 genres per poster
    y_pred = y_true.copy()
    y_pred[: round(20 * (ratio - 1)), 2] = 1  # `ratio` times as many
    score = ReferenceScore(reference_metrics(y_true, y_pred, np.full(10, 1990)))
    assert score.get("genres_per_poster_ratio") == pytest.approx(ratio)
    passed, failures, _ = RULE.judge(score, score)  # against itself: only the limit can fail
    assert passed == trusted, failures
    assert trusted or any("reference_genres_per_poster_excess" in f for f in failures)

    stats = {"val_genres_per_poster": 2.0 * ratio, "val_true_genres_per_poster": 2.0}
    run = MlflowClient().get_run(_parent_run("run", 0.6, balanced=True, stats=stats))
    assert (RULE.trust_problems(run) == []) == trusted
