"""Review priority: uncertainty at the decision layer's cuts, spread by a greedy k-center."""

from __future__ import annotations

import numpy as np
import pytest

from posterml.evaluation import priority as priority_module
from posterml.evaluation.priority import decision_uncertainty, review_priority

N_GENRES = 19


def _batch(n: int = 40, d: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    proba = rng.random((n, N_GENRES))
    cuts = rng.uniform(0.1, 0.6, N_GENRES)
    features = rng.normal(size=(n, d)).astype(np.float32)
    return proba, cuts, features


@pytest.mark.parametrize("with_features", [False, True])
def test_shape_range_and_a_full_ranking(with_features):
    proba, cuts, features = _batch()
    priority = review_priority(proba, cuts, features if with_features else None)
    assert priority.shape == (40,) and priority.dtype == np.float64
    assert priority.min() >= 0.0 and priority.max() == 1.0
    # One distinct value per poster: a strict ranking, 1 - rank / n.
    assert np.allclose(np.sort(priority)[::-1], 1.0 - np.arange(40) / 40)


def test_per_poster_thresholds_are_accepted():
    proba, cuts, features = _batch()
    same = review_priority(proba, np.tile(cuts, (40, 1)), features)
    assert np.array_equal(same, review_priority(proba, cuts, features))


def test_deterministic_including_ties():
    proba, cuts, features = _batch()
    proba[5:10] = proba[0]  # exact ties in uncertainty and duplicate features
    features[5:10] = features[0]
    first = review_priority(proba, cuts, features)
    assert all(np.array_equal(first, review_priority(proba, cuts, features)) for _ in range(3))
    assert np.array_equal(review_priority(proba, cuts), review_priority(proba, cuts))


def test_near_threshold_posters_rank_above_confident_ones():
    cuts = np.full(N_GENRES, 0.3)
    confident = np.where(np.arange(N_GENRES) < 2, 0.99, 0.001)  # far from every cut
    near = confident.copy()
    near[[0, 5, 9]] = [0.31, 0.29, 0.3]  # three genres sitting on their cut
    proba = np.stack([confident, confident, near, confident, near])
    features = np.eye(5, 8, dtype=np.float32)  # all equally far apart: diversity is neutral
    for feats in (None, features):
        priority = review_priority(proba, cuts, feats)
        assert priority[[2, 4]].min() > priority[[0, 1, 3]].max()


def test_uncertainty_is_measured_against_each_genres_cut():
    proba = np.array([[0.05, 0.5]])
    # At a cut of 0.05 the first genre is a coin flip; at 0.5 it is near-certain "no".
    u_low = decision_uncertainty(proba, np.array([0.05, 0.5]))
    u_half = decision_uncertainty(proba, np.array([0.5, 0.5]))
    assert u_low[0] == pytest.approx(2.0) and u_half[0] < 1.4


def test_diversity_spreads_picks_across_clusters_of_duplicates():
    # Four clusters, each one poster repeated 10 times; cluster 0 is the most uncertain.
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 16)).astype(np.float32)
    features = np.repeat(centres, 10, axis=0)
    cuts = np.full(N_GENRES, 0.5)
    proba = np.full((40, N_GENRES), 0.01)
    proba[:, 0] = np.repeat([0.5, 0.6, 0.7, 0.8], 10)  # cluster 0 on the cut
    top4 = np.argsort(-review_priority(proba, cuts, features))[:4]
    assert sorted(top4 // 10) == [0, 1, 2, 3]  # one of each cluster before any repeat
    assert top4[0] // 10 == 0  # starting with the most uncertain
    # Uncertainty alone (no features, or diversity 0) takes cluster 0's ten copies first.
    for priority in (
        review_priority(proba, cuts),
        review_priority(proba, cuts, features, diversity=0.0),
    ):
        assert set(np.argsort(-priority)[:10] // 10) == {0}


def test_full_diversity_is_farthest_point_from_the_most_uncertain():
    features = np.array([[1, 0], [0.99, 0.1], [-1, 0], [0, 1]], dtype=np.float32)
    proba = np.full((4, N_GENRES), 0.01)
    proba[0, 0] = 0.5
    order = np.argsort(-review_priority(proba, np.full(N_GENRES, 0.5), features, diversity=1.0))
    assert list(order[:3]) == [0, 2, 3]  # then the opposite poster, then the orthogonal one


def test_beyond_the_greedy_budget_the_rest_follow_the_same_score(monkeypatch):
    proba, cuts, features = _batch(n=30)
    full = review_priority(proba, cuts, features)
    monkeypatch.setattr(priority_module, "GREEDY_PICKS", 10)
    capped = review_priority(proba, cuts, features)
    top = np.argsort(-full)[:10]
    assert np.array_equal(np.argsort(-capped)[:10], top)
    assert np.allclose(np.sort(capped), np.sort(full))


def test_empty_and_single_poster():
    empty = review_priority(np.zeros((0, N_GENRES)), np.full(N_GENRES, 0.5), np.zeros((0, 4)))
    assert empty.shape == (0,)
    assert review_priority(np.zeros((0, N_GENRES)), np.full(N_GENRES, 0.5)).shape == (0,)
    one = review_priority(np.full((1, N_GENRES), 0.2), np.full(N_GENRES, 0.5), np.ones((1, 4)))
    assert one.tolist() == [1.0]


def test_constant_and_zero_inputs_still_rank():
    # Every poster certain (probabilities 0/1) and all-zero features: a ranking by row.
    proba = np.tile(np.r_[1.0, np.zeros(N_GENRES - 1)], (5, 1))
    priority = review_priority(proba, np.full(N_GENRES, 0.5), np.zeros((5, 3)))
    assert np.allclose(priority, [1.0, 0.8, 0.6, 0.4, 0.2])


@pytest.mark.parametrize(
    ("proba", "cuts", "features", "diversity", "message"),
    [
        (np.zeros(19), np.zeros(19), None, 0.5, "proba must be"),
        (np.zeros((3, 19)), np.zeros(18), None, 0.5, "thresholds must be"),
        (np.full((3, 19), np.nan), np.zeros(19), None, 0.5, "finite"),
        (np.zeros((3, 19)), np.zeros(19), np.zeros((2, 4)), 0.5, "features has"),
        (np.zeros((3, 19)), np.zeros(19), np.zeros(3), 0.5, "features has"),
        (np.zeros((3, 19)), np.zeros(19), None, 1.5, "diversity"),
    ],
)
def test_bad_inputs_are_refused(proba, cuts, features, diversity, message):
    with pytest.raises(ValueError, match=message):
        review_priority(proba, cuts, features, diversity=diversity)
