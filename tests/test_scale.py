"""Training past the exact SVM's memory: the Nystroem head, the logged switch to it, and the
one-line refusal of a data set too large for the machine, before any feature is extracted.

Bounds are set small (``max_exact_posters``, ``memory_gib``) so the paths run on the synthetic
set instead of 50,000 posters.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
from helpers import toy_features
from sklearn.kernel_approximation import Nystroem

from posterml.classifiers.nystroem import NystroemSVMClassifier, nystroem_features, nystroem_map
from posterml.classifiers.svm import RBFSVMClassifier
from posterml.modeling.scale import TooLargeError, plan_head


def test_nystroem_map_is_sklearns_kernel_approximation() -> None:
    """Same landmarks, same kernel: our features' dot products are sklearn's Nystroem's."""
    X, _ = toy_features(300, 12, seed=3)
    gamma = 0.05
    landmarks, normalisation = nystroem_map(X, gamma, 300, seed=0)
    ours = nystroem_features(X[:50], landmarks, normalisation, gamma)
    theirs = Nystroem(gamma=gamma, n_components=300, random_state=0).fit(landmarks)
    Z = theirs.transform(X[:50])
    np.testing.assert_allclose(ours @ ours.T, Z @ Z.T, atol=2e-4)
    # With every poster a landmark the approximation is the kernel itself.
    exact = np.exp(-gamma * ((X[:50, None, :] - X[None, :50, :]) ** 2).sum(-1))
    np.testing.assert_allclose(ours @ ours.T, exact, atol=2e-4)


def test_nystroem_head_ranks_like_the_exact_svm() -> None:
    """Same C, gamma_scale and weights: the two heads order held-out posters alike."""
    X, Y = toy_features(400, 12, seed=4)
    params = {"C": 1.0, "gamma_scale": 1.0, "class_weight": "balanced"}
    exact = RBFSVMClassifier(**params).fit(X[:300], Y[:300]).decision_function(X[300:])
    approx = NystroemSVMClassifier(**params, n_components=300).fit(X[:300], Y[:300])
    scores = approx.decision_function(X[300:])
    for genre in (0, 6):  # the learnable genres of toy_features
        assert np.corrcoef(exact[:, genre], scores[:, genre])[0, 1] > 0.9


def test_plan_keeps_the_exact_svm_up_to_the_bound_and_switches_above() -> None:
    at = plan_head(100, 120, 1280, max_exact_posters=100, memory_gib=1e6)
    above = plan_head(101, 120, 1280, max_exact_posters=100, memory_gib=1e6)
    assert (at.head, at.switched) == ("exact", False)
    assert (above.head, above.switched) == ("nystroem", True)
    assert "101 training posters > max_exact_posters=100" in above.reason
    assert above.tags() == {"svm_head": "nystroem", "svm_head_reason": above.reason}
    pinned = plan_head(101, 120, 1280, head="exact", max_exact_posters=100, memory_gib=1e6)
    assert pinned.head == "exact"
    with pytest.raises(ValueError, match="svm_head='kernel'"):
        plan_head(10, 12, 1280, head="kernel")


def test_too_large_is_one_line_naming_a_size_that_fits() -> None:
    with pytest.raises(TooLargeError) as caught:
        plan_head(80_000, 100_000, 1280, memory_gib=6.0)
    message = str(caught.value)
    assert "\n" not in message and "6.0 GiB available" in message
    fits = int(message.split("max_posters=")[1].split()[0].replace(",", ""))
    assert 0 < fits < 100_000
    plan_head(int(fits * 0.8), fits, 1280, memory_gib=6.0)  # the advice does fit


def test_the_detail_view_counts_twice_in_the_plan() -> None:
    """A run with the detail view fits the head on the crops' features too: the estimate
    counts both, and the size it advises fits with both."""
    one = plan_head(8_000, 10_000, 1280, memory_gib=100.0)
    two = plan_head(8_000, 10_000, 1280, memory_gib=100.0, feature_sets=2)
    assert 1.5 * one.need_gib < two.need_gib < 2.0 * one.need_gib  # the base is counted once
    budget = (one.need_gib + two.need_gib) / 2  # enough for the picture, not for its detail
    plan_head(8_000, 10_000, 1280, memory_gib=budget)
    with pytest.raises(TooLargeError) as caught:
        plan_head(8_000, 10_000, 1280, memory_gib=budget, feature_sets=2)
    fits = int(str(caught.value).split("max_posters=")[1].split()[0].replace(",", ""))
    plan_head(int(fits * 0.8), fits, 1280, memory_gib=budget, feature_sets=2)


def _synthetic(tmp_path: Path, seed: int) -> Path:
    from posterml.data.synthetic import write_synthetic

    return write_synthetic(tmp_path / "posters", n=120, seed=seed)


def test_run_above_the_bound_switches_head_and_logs_why(
    tracking_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from posterml.modeling.cli import experiment_config
    from posterml.modeling.run import run_experiment

    config = experiment_config(
        "resnet_svm",
        data=str(_synthetic(tmp_path, seed=11)),
        backbone="efficientnet_lite0",
        class_weight="balanced",
        n_trials=1,
        cv_folds=2,
        max_exact_posters=50,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        log_model=False,
    )
    with caplog.at_level(logging.INFO, logger="posterml"):
        run_id = run_experiment(config)
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["svm_head"] == "nystroem"
    assert "> max_exact_posters=50" in run.data.tags["svm_head_reason"]
    assert run.data.params["max_exact_posters"] == "50"
    switched = [r for r in caplog.records if r.getMessage().startswith("nystroem head:")]
    assert switched and switched[0].levelno == logging.WARNING
    assert "test_f1_weighted" in run.data.metrics


def test_too_large_data_set_stops_before_features_and_runs(
    tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from posterml.modeling.cli import main

    root = _synthetic(tmp_path, seed=12)  # posters no other test has extracted
    cache = Path(os.environ["POSTERML_CACHE_DIR"])
    before = sorted(p for p in cache.rglob("*") if "features" in p.parts)
    argv = ["--data", str(root), "--backbone", "efficientnet_lite0", "--memory-gib", "0.5"]
    assert main("resnet_svm", argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("posterml resnet_svm: 120 posters need ~")
    assert "0.5 GiB available: pass max_posters=0" in err
    assert sorted(p for p in cache.rglob("*") if "features" in p.parts) == before
    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert client.search_runs(experiments) == []
