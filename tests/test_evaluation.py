"""Metric names, the decision rule and the baseline."""

from __future__ import annotations

import numpy as np

from posterml.evaluation.cuts import best_f1_threshold
from posterml.evaluation.decision import (
    DecisionLayer,
    cross_fit_predict,
    estimate_priors_em,
    platt_scaling,
    shift_priors,
)
from posterml.evaluation.metrics import (
    classification_metrics,
    decade_metrics,
    decision_stats,
    report_frame,
    top_k_baseline,
)
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


def _rare_genre_case(seed: int = 0, n: int = 600):
    """Scores like a real model's: informative for common genres, noise for TV Movie, which
    has a single positive in the validation data (the case that broke the served model)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 19)) < 0.25).astype(np.uint8)
    tv = GENRES.index("TV Movie")
    y[:, tv] = 0
    y[7, tv] = 1
    scores = 1 / (1 + np.exp(-(2.5 * (y - 0.5) + rng.normal(0, 1, y.shape))))
    scores[:, tv] = rng.uniform(0.0, 0.3, n)
    scores[7, tv] = 0.05  # the one positive ranks low, as it did on real posters
    return y, scores, tv


def test_a_genre_with_one_positive_is_not_predicted_for_most_posters():
    y, scores, tv = _rare_genre_case()
    layer = DecisionLayer().fit(scores, y)
    pred = layer.predict(scores)
    # An F1 cut tuned on one positive goes just under it: ~80% of posters here.
    assert pred[:, tv].mean() < 0.01
    assert layer.thresholds_[tv] == 0.5  # too few positives to tune: the safe default
    # Unseen posters with the same score distribution fare the same.
    y2, scores2, _ = _rare_genre_case(seed=1)
    assert layer.predict(scores2)[:, tv].mean() < 0.01


def test_no_genre_is_predicted_beyond_its_rate_cap():
    rng = np.random.default_rng(3)
    y = (rng.random((2000, 19)) < 0.1).astype(np.uint8)
    scores = rng.uniform(size=y.shape) * 0.2 + 0.3 * y  # weak but informative
    layer = DecisionLayer(rate_cap=1.5, min_one_genre=False, max_genres=19).fit(scores, y)
    pred = layer.predict(scores)
    assert np.all(pred.sum(axis=0) <= np.floor(1.5 * y.sum(axis=0)))


def test_calibrated_scores_are_monotonic_probabilities():
    y, scores, _ = _rare_genre_case(seed=2)
    layer = DecisionLayer().fit(scores, y)
    grid = np.tile(np.linspace(0, 1, 201)[:, None], (1, 19))
    proba = layer.predict_proba(grid)
    assert np.all((proba >= 0) & (proba <= 1))
    assert np.all(np.diff(proba, axis=0) >= -1e-12)
    # Calibrated: on the data it was fitted to, mean probability matches the genre rate.
    fitted = layer.predict_proba(scores)
    common = y.sum(axis=0) > 50
    assert np.allclose(fitted.mean(axis=0)[common], y.mean(axis=0)[common], atol=0.02)


def test_platt_scaling_ignores_uninformative_scores():
    rng = np.random.default_rng(4)
    x = rng.normal(size=500)
    slope, _ = platt_scaling(-x, x > 1.0)  # anti-correlated: no information upwards
    assert slope == 0.0
    slope, _ = platt_scaling(x, x > 0.0)
    assert slope > 1.0


def test_best_f1_threshold_respects_the_cap_and_the_minimum():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0] * 5)
    proba = np.linspace(1, 0, len(y))
    assert best_f1_threshold(y, proba, min_positives=15) == 0.5  # 10 positives < 15
    cut = best_f1_threshold(y, proba, rate_cap=1.5, min_positives=1)
    assert (proba >= cut).sum() <= 15


def test_genres_are_capped_per_poster_with_a_top_one_fallback():
    proba = np.full((2, 19), 0.1)
    proba[0, :8] = np.linspace(0.9, 0.6, 8)
    layer = DecisionLayer(max_genres=5, min_one_genre=True)
    pred = layer.decide(proba, np.full((2, 19), 0.5))
    assert pred[0].tolist()[:8] == [1, 1, 1, 1, 1, 0, 0, 0] and pred[0].sum() == 5
    assert pred[1].sum() == 1 and pred[1, 0] == 1  # ties: the first genre
    assert DecisionLayer(min_one_genre=False).decide(proba, np.full((2, 19), 0.5))[1].sum() == 0


def test_the_plain_rule_is_the_studys_half_cut():
    scores = np.full((1, 19), 0.4)
    scores[0, 3] = 0.6
    layer = DecisionLayer(calibrate=False, tune_thresholds=False, min_one_genre=False)
    layer.fit(np.vstack([scores, 1 - scores]), np.eye(2, 19, dtype=np.uint8))
    assert layer.predict(scores)[0].tolist() == [int(j == 3) for j in range(19)]
    assert np.allclose(layer.predict_proba(scores), scores)


def test_decision_layer_round_trips_through_json():
    y, scores, _ = _rare_genre_case(seed=5)
    years = np.where(np.arange(len(y)) % 2, 1975, 2005)
    layer = DecisionLayer().fit(scores, y, years)
    import json

    again = DecisionLayer.from_dict(json.loads(json.dumps(layer.to_dict())))
    assert np.array_equal(again.predict(scores, years), layer.predict(scores, years))
    assert np.allclose(again.predict_proba(scores), layer.predict_proba(scores))
    assert set(layer.to_dict()["thresholds"]) == set(GENRES)  # thresholds carry genre names


def test_prior_shift_by_hand():
    # p = 0.5 under a 20% rate; the decade's rate is 50%: odds x (1/1)/(1/4) = 4 -> p' = 0.8.
    assert np.isclose(shift_priors(np.array([0.5]), np.array([0.2]), np.array([0.5]))[0], 0.8)
    # Unchanged rates leave probabilities alone.
    p = np.array([0.1, 0.7])
    assert np.allclose(shift_priors(p, np.array([0.3, 0.3]), np.array([0.3, 0.3])), p)


def test_em_recovers_a_new_periods_genre_rate():
    """Saerens et al.: posteriors from a calibrated model trained at a 20% rate, applied to a
    batch whose true rate is 50%, give back ~50% from unlabelled data alone."""
    rng = np.random.default_rng(6)
    n = 4000
    y_new = rng.random(n) < 0.5
    x = rng.normal(np.where(y_new, 1.0, -1.0), 1.0)
    # exact posterior under the training prior 0.2 for unit-variance Gaussians at +-1
    proba = 1 / (1 + np.exp(-(2 * x + np.log(0.2 / 0.8))))
    estimate = estimate_priors_em(proba[:, None], np.array([0.2]))
    assert abs(estimate[0] - 0.5) < 0.03
    assert abs(proba.mean() - 0.5) > 0.1  # the naive average is biased


def test_years_move_decisions_towards_the_decades_genres():
    rng = np.random.default_rng(7)
    n = 3000
    years = np.where(np.arange(n) % 2, 1955, 2005)
    drama = GENRES.index("Drama")
    y = (rng.random((n, 19)) < 0.2).astype(np.uint8)
    y[:, drama] = rng.random(n) < np.where(years == 1955, 0.7, 0.2)
    scores = 1 / (1 + np.exp(-(1.0 * (y - 0.5) + rng.normal(0, 1, y.shape))))
    layer = DecisionLayer().fit(scores, y, years)
    assert layer.decade_prevalence_["1950"][drama] > 0.6
    old, new = (years == 1955), (years == 2005)
    plain = layer.predict_proba(scores)
    aware = layer.predict_proba(scores, years)
    assert aware[old, drama].mean() > plain[old, drama].mean() + 0.1
    assert aware[new, drama].mean() < plain[new, drama].mean()
    f1 = lambda p: classification_metrics(y, p, "v")["v_f1_micro"]  # noqa: E731
    assert f1(layer.predict(scores, years)) > f1(layer.predict(scores))
    # No year (NaN) or an unseen decade behaves as before, thresholds included.
    unknown = np.full(n, np.nan)
    assert np.array_equal(layer.predict(scores, unknown), layer.predict(scores))
    unseen = np.full(n, 1925.0)
    assert np.array_equal(layer.predict(scores, unseen), layer.predict(scores))


def test_cross_fitted_decisions_never_use_their_own_labels():
    rng = np.random.default_rng(8)
    y = (rng.random((400, 19)) < 0.3).astype(np.uint8)
    noise = rng.uniform(size=y.shape)  # scores carry no information at all
    _, honest, _ = cross_fit_predict(DecisionLayer(min_positives=5), noise, y, n_folds=5)
    fitted_in_sample = DecisionLayer(min_positives=5).fit(noise, y).predict(noise)
    f1 = lambda p: classification_metrics(y, p, "v")["v_f1_macro"]  # noqa: E731
    assert f1(honest) <= f1(fitted_in_sample)


def test_decision_stats_flag_the_tv_movie_failure():
    y = np.zeros((100, 19), np.uint8)
    y[:, GENRES.index("Drama")] = 1
    pred = y.copy()
    pred[:46, GENRES.index("TV Movie")] = 1
    stats, worst = decision_stats(y, pred, "test")
    assert worst == "TV Movie" and stats["test_max_overprediction"] == 47.0
    assert stats["test_genres_per_poster"] == 1.46 and stats["test_true_genres_per_poster"] == 1
    assert stats["test_distinct_predictions"] == 2


def test_decade_metrics_put_the_model_beside_the_baseline():
    y = np.zeros((4, 19), np.uint8)
    y[:, 0] = 1
    pred = y.copy()
    pred[2:, 0] = 0
    pred[2:, 1] = 1
    baseline = np.zeros_like(y)
    baseline[:, 1] = 1
    m = decade_metrics(y, pred, np.array([1971, 1979, 2001, 2009]), "cross_period", baseline)
    assert m["cross_period_f1_micro_1970s"] == 1.0 and m["cross_period_f1_micro_2000s"] == 0.0
    assert m["cross_period_baseline_f1_micro_1970s"] == 0.0 and m["cross_period_n_2000s"] == 2


def test_baseline_predicts_the_two_most_frequent_training_genres():
    y_train = np.zeros((10, 19), int)
    y_train[:, 6] = 1
    y_train[:7, 3] = 1
    y_train[:2, 0] = 1
    pred = top_k_baseline(y_train, 3)
    assert pred.shape == (3, 19) and set(np.flatnonzero(pred[0])) == {3, 6}
