"""Metric names, the decision rule and the baseline."""

from __future__ import annotations

import numpy as np

from posterml.evaluation.metrics import classification_metrics, report_frame, top_k_baseline
from posterml.evaluation.thresholds import DecisionRule
from posterml.genres import GENRES


def test_metric_names_line_up_across_families():
    rng = np.random.default_rng(0)
    y = (rng.random((50, 19)) < 0.3).astype(int)
    metrics = classification_metrics(y, y, "test")
    assert metrics["test_f1_science_fiction"] == 1.0
    for avg in ("micro", "macro", "weighted", "samples"):
        assert metrics[f"test_f1_{avg}"] == 1.0
    assert metrics["test_hamming_loss"] == 0.0
    assert len([k for k in metrics if k.startswith("test_support_")]) == 19
    assert metrics["test_support_drama"] == y[:, GENRES.index("Drama")].sum()


def test_metrics_penalise_missed_genres():
    y = np.zeros((4, 19), int)
    y[:, 0] = 1
    y[:2, 1] = 1
    pred = np.zeros_like(y)
    pred[:, 0] = 1
    metrics = classification_metrics(y, pred, "val")
    assert metrics["val_recall_adventure"] == 0.0
    assert metrics["val_f1_action"] == 1.0
    assert metrics["val_f1_micro"] < 1.0
    assert list(report_frame(y, pred)["label"][:2]) == ["Action", "Adventure"]


def test_tuned_thresholds_beat_the_default_on_shifted_scores():
    rng = np.random.default_rng(1)
    y = (rng.random((400, 19)) < 0.2).astype(int)
    scores = 0.1 + 0.3 * y + rng.normal(0, 0.05, y.shape)  # positives around 0.4 < 0.5
    default = DecisionRule.tune(y, scores, tune=False, min_one_genre=False)
    tuned = DecisionRule.tune(y, scores, tune=True, min_one_genre=False)
    f1 = lambda rule: classification_metrics(y, rule.apply(scores), "v")["v_f1_micro"]  # noqa: E731
    assert f1(default) < 0.1 < 0.9 < f1(tuned)
    assert all(0.1 < t < 0.4 for t in tuned.thresholds)
    assert DecisionRule.from_dict(tuned.to_dict()) == tuned


def test_min_one_genre_falls_back_to_the_top_score():
    scores = np.full((2, 19), 0.1)
    scores[0, 6] = 0.3
    scores[1, 3] = 0.9
    rule = DecisionRule(min_one_genre=True)
    pred = rule.apply(scores)
    assert pred[0].tolist() == [int(j == 6) for j in range(19)]
    assert pred[1, 3] == 1 and pred[1].sum() == 1
    assert DecisionRule(min_one_genre=False).apply(scores)[0].sum() == 0


def test_baseline_predicts_the_two_most_frequent_training_genres():
    y_train = np.zeros((10, 19), int)
    y_train[:, 6] = 1
    y_train[:7, 3] = 1
    y_train[:2, 0] = 1
    pred = top_k_baseline(y_train, 3)
    assert pred.shape == (3, 19) and set(np.flatnonzero(pred[0])) == {3, 6}
