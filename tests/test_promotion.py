"""The dealer's loop on a real sqlite store: add posters, train, ``register --reference``
promotes only a model that wins on the fixed reference set, a weak one stays
``@challenger``, a run that saw reference posters is refused, and ``rollback`` undoes.

Models are real (EfficientNet-Lite0 features + balanced SVM on synthetic posters) and are
scored through the served model's code path."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.models import MetricThreshold

from posterml.cli import main
from posterml.data.synthetic import write_synthetic
from posterml.names import MODEL_NAME
from posterml.registry.reference import ReferenceScore
from posterml.registry.rule import RULE
from posterml.registry.versions import logged_model_id

pytestmark = pytest.mark.slow


def train(data, tmp_path, **knobs) -> str:
    from posterml.modeling.cli import experiment_config
    from posterml.modeling.run import run_experiment

    config = experiment_config(
        "resnet_svm",
        data=str(data),
        backbone="efficientnet_lite0",
        class_weight="balanced",
        n_trials=2,
        storage=f"sqlite:///{tmp_path}/optuna.db",
        experiment="shop",
        **knobs,
    )
    return run_experiment(config)


def aliases(client: MlflowClient) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(MODEL_NAME).aliases.items()}


def test_the_dealers_loop(tracking_uri, tmp_path, capsys):
    client = MlflowClient()
    reference = write_synthetic(tmp_path / "reference", n=150, seed=11)
    shop = tmp_path / "shop"
    first = write_synthetic(tmp_path / "first", n=240, seed=1)
    more = write_synthetic(tmp_path / "more", n=300, seed=2)

    # 1-2: a first model on a small shop must beat Drama + Comedy on the reference.
    assert main(["add", str(first), "--to", str(shop), "--reference", str(reference)]) == 0
    train(shop, tmp_path)
    assert main(["register", "--reference", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "v1 beat Drama + Comedy" in out, out
    assert aliases(client) == {"champion": "1"}

    # 3: the dealer's posters flow in, twice: the second time adds nothing.
    assert main(["add", str(more), "--to", str(shop)]) == 0
    assert main(["add", str(more), "--to", str(shop)]) == 0
    assert "added 0 poster(s)" in capsys.readouterr().out

    # 4-5: a model on the grown shop is judged against the champion and promoted.
    train(shop, tmp_path)
    assert main(["register", "--reference", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "v2 beat champion v1" in out, out
    assert aliases(client) == {"champion": "2", "previous": "1"}
    v2 = client.get_model_version(MODEL_NAME, "2")
    assert v2.tags["promotion"] == "promoted" and float(v2.tags["reference_f1_micro"]) > 0
    # The scores are logged to each model, linked to the reference as an MLflow dataset.
    logged = mlflow.get_logged_model(logged_model_id(v2))
    names = {m.key for m in logged.metrics}
    assert {"reference_f1_micro", "reference_f1_micro_pre1980"} <= names
    digests = {m.dataset_digest for m in logged.metrics if m.key == "reference_f1_micro"}
    assert digests == {v2.tags["reference_digest"]}

    # 6: a weak model (40 posters) is registered but refused, and says why.
    weak = write_synthetic(tmp_path / "weak", n=40, seed=3)
    train(weak, tmp_path)
    assert main(["register", "--reference", str(reference)]) == 1
    out = capsys.readouterr().out
    assert "v3 did not beat champion v2" in out and "stays @challenger" in out, out
    assert aliases(client) == {"champion": "2", "previous": "1", "challenger": "3"}
    v3 = client.get_model_version(MODEL_NAME, "3")
    assert v3.tags["promotion"] == "refused" and "reference_f1" in v3.tags["refused_because"]
    assert "did not beat" in v3.description

    # 7: rollback puts v1 back; with no older champion, a second rollback has nowhere to go.
    assert main(["rollback"]) == 0
    assert "v1 again (v2 rolled back)" in capsys.readouterr().out
    assert aliases(client) == {"champion": "1", "challenger": "3"}
    assert main(["rollback"]) == 1
    assert "no @previous" in capsys.readouterr().err

    # A run whose data holds reference posters (found by content, under other names) is
    # refused before anything is registered.
    leaky = tmp_path / "leaky"
    assert main(["add", str(more), str(reference), "--to", str(leaky)]) == 0
    train(leaky, tmp_path)
    versions = len(client.search_model_versions(f"name = '{MODEL_NAME}'"))
    assert main(["register", "--reference", str(reference)]) == 2
    err = capsys.readouterr().err
    assert "150 poster(s) of the reference set" in err and "never judged on posters" in err
    assert len(client.search_model_versions(f"name = '{MODEL_NAME}'")) == versions


def _score(**values: float) -> ReferenceScore:
    return ReferenceScore({f"reference_{k}": v for k, v in values.items()})


GOOD = dict(
    f1_micro=0.50,
    f1_samples=0.48,
    f1_micro_pre1980=0.44,
    genres_per_poster_excess=0.1,
    genres_per_poster_shortfall=0.0,
)


def test_rules_tolerate_noise_but_not_a_vintage_drop_or_talkativeness():
    champion = _score(**GOOD)
    assert RULE.judge(_score(**{**GOOD, "f1_micro": 0.495}), champion)[0]  # within tolerance
    passed, failures, thresholds = RULE.judge(_score(**{**GOOD, "f1_micro": 0.48}), champion)
    assert not passed and "reference_f1_micro value threshold check failed" in failures[0]
    assert not RULE.judge(_score(**{**GOOD, "f1_micro_pre1980": 0.435}), champion)[0]
    assert not RULE.judge(_score(**{**GOOD, "genres_per_poster_excess": 0.3}), champion)[0]
    assert RULE.judge(_score(**{**GOOD, "genres_per_poster_shortfall": 0.3}), champion)[0]
    assert not RULE.judge(_score(**{**GOOD, "genres_per_poster_shortfall": 0.45}), champion)[0]
    assert all(isinstance(t, MetricThreshold) for t in thresholds.values())


def test_without_a_champion_the_baseline_is_the_bar():
    baseline = dict(baseline_f1_micro=0.40, baseline_f1_samples=0.41)
    candidate = _score(**GOOD, **baseline)
    rules = RULE.thresholds(None, candidate)
    assert rules["reference_f1_micro"].threshold == pytest.approx(0.41)
    assert RULE.judge(candidate, None)[0]
    assert not RULE.judge(_score(**{**GOOD, "f1_samples": 0.415}, **baseline), None)[0]
