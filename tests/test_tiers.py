"""The decision layer's two tiers: asserted ``genres`` above a precision floor, and ``maybe``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import toy_features

from posterml.classifiers.classic import ClassicClassifier
from posterml.evaluation.cuts import NEVER, best_f1_threshold
from posterml.evaluation.decision import DecisionLayer, cross_fit_predict
from posterml.evaluation.metrics import tier_metrics, tier_report_frame
from posterml.genres import GENRES

LEARNABLE, NOISE = (0, 6), 3  # toy_features: two learnable genres, one at random (10%)


@pytest.fixture(scope="module")
def toy() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold logistic-regression scores on toy features: (scores, Y, years)."""
    X, Y = toy_features(n=900, seed=1)
    scores = np.zeros(Y.shape)
    fold = np.arange(len(X)) % 5
    for k in range(5):
        held = fold == k
        model = ClassicClassifier("logreg", C=1.0).fit(X[~held], Y[~held])
        scores[held] = model.predict_scores(X[held])
    years = np.where(np.arange(len(X)) % 3 == 0, 1965, 2005)
    return scores, Y, years


def test_a_genre_no_cut_makes_precise_is_never_asserted(toy):
    scores, Y, _ = toy
    layer = DecisionLayer().fit(scores, Y)
    assert layer.thresholds_[NOISE] == NEVER
    assert all(layer.thresholds_[j] <= 1 for j in LEARNABLE)
    _, genres, maybe = layer.predict_tiers(scores)
    # Not even the one-genre fallback asserts it; its calibrated probability is flat (the
    # scores carry nothing), so there is no cut for maybe either.
    assert genres[:, NOISE].sum() == 0 and maybe[:, NOISE].sum() == 0
    assert (genres.sum(axis=1) >= 1).all()
    assert maybe[:, list(LEARNABLE)].sum() > 0
    # Without a floor the F1 cut asserts it (at a precision near its 10% rate).
    assert DecisionLayer(precision_floor=0).fit(scores, Y).thresholds_[NOISE] < 1


@pytest.mark.parametrize("floor", [0.3, 0.6])
def test_asserted_genres_clear_the_floor_where_they_were_fitted(toy, floor):
    scores, Y, _ = toy
    layer = DecisionLayer(precision_floor=floor, min_one_genre=False).fit(scores, Y)
    proba = layer.predict_proba(scores)
    for j, cut in enumerate(layer.thresholds_):
        chosen = proba[:, j] >= cut
        if 0 < cut <= 1 and chosen.any() and Y[:, j].sum() >= layer.min_positives:
            assert Y[chosen, j].mean() >= floor, GENRES[j]


def test_without_a_floor_the_cuts_are_the_f1_cuts(toy):
    scores, Y, _ = toy
    layer = DecisionLayer(precision_floor=0).fit(scores, Y)
    proba = layer.predict_proba(scores)
    assert layer.thresholds_ == [
        best_f1_threshold(Y[:, j], proba[:, j], layer.rate_cap, layer.min_positives)
        for j in range(Y.shape[1])
    ]


def test_maybe_is_capped_within_budget_and_never_repeats_a_genre(toy):
    scores, Y, _ = toy
    layer = DecisionLayer(max_maybe=2, maybe_per_poster=0.5).fit(scores, Y)
    proba, genres, maybe = layer.predict_tiers(scores)
    assert not (genres & maybe).any()
    assert maybe.sum(axis=1).max() <= 2
    assert 0 < maybe.sum(axis=1).mean() <= 0.5  # the budget, on the data it was fitted on
    # Each maybe genre is at least as probable as every candidate left out of its row.
    cuts = layer.thresholds_for(len(proba), tier="maybe")
    left_out = (proba >= cuts) & (genres == 0) & (maybe == 0)
    for row in np.flatnonzero(left_out.any(axis=1)):
        assert proba[row, maybe[row] == 1].min() >= proba[row, left_out[row]].max()
    # The tiers together find more of each genre's posters than genres alone.
    found = ((genres | maybe) & Y).sum(axis=0)
    assert (found >= (genres & Y).sum(axis=0)).all() and found.sum() > (genres & Y).sum()


def test_the_budget_binds_on_weak_genres_and_more_budget_gives_more_maybe(toy):
    rng = np.random.default_rng(2)
    Y = (rng.random((1500, 19)) < 0.12).astype(np.uint8)
    weak = 1 / (1 + np.exp(-(1.5 * Y + rng.normal(0, 1, Y.shape) - 2)))  # barely informative
    per_poster = []
    for budget in (0.2, 0.5, 1.0):
        maybe = DecisionLayer(maybe_per_poster=budget).fit(weak, Y).predict_tiers(weak)[2]
        per_poster.append(maybe.sum(axis=1).mean())
        assert budget - 0.05 <= per_poster[-1] <= budget  # spent, not overspent
    assert per_poster == sorted(per_poster)
    scores, Y, _ = toy
    for layer in (DecisionLayer(max_maybe=0), DecisionLayer(maybe_per_poster=0)):
        assert layer.fit(scores, Y).predict_tiers(scores)[2].sum() == 0
        assert set(layer.maybe_thresholds_) == {NEVER}


def test_decide_maybe_keeps_the_most_probable():
    proba = np.full((1, 19), 0.05)
    proba[0, :5] = [0.9, 0.4, 0.3, 0.35, 0.2]
    genres = np.zeros((1, 19), np.uint8)
    genres[0, 0] = 1
    maybe = DecisionLayer(max_maybe=2).decide_maybe(proba, genres, np.full((1, 19), 0.25))
    assert np.flatnonzero(maybe[0]).tolist() == [1, 3]  # 0.4 and 0.35; 0.9 is asserted


def test_year_aware_cuts_get_both_tiers(toy):
    scores, Y, years = toy
    layer = DecisionLayer().fit(scores, Y, years)
    assert layer.year_thresholds_ is not None and layer.year_maybe_thresholds_ is not None
    given = np.array([1965.0, np.nan, 1925.0])  # a learnt decade, unknown, never seen
    cuts = layer.thresholds_for(3, given, tier="maybe")
    np.testing.assert_array_equal(cuts[0], layer.year_maybe_thresholds_)
    np.testing.assert_array_equal(cuts[1], layer.maybe_thresholds_)
    np.testing.assert_array_equal(cuts[2], layer.maybe_thresholds_)
    _, genres, maybe = layer.predict_tiers(scores, years)
    assert not (genres & maybe).any()
    with pytest.raises(ValueError, match="tier"):
        layer.thresholds_for(3, tier="perhaps")


def test_cross_fitted_tiers_are_honest_and_shaped_like_predict(toy):
    scores, Y, years = toy
    proba, genres, maybe = cross_fit_predict(DecisionLayer(), scores, Y, years, seed=3)
    assert proba.shape == genres.shape == maybe.shape == Y.shape
    assert not (genres & maybe).any() and maybe.sum(axis=1).max() <= 2


def test_tiers_round_trip_through_json_with_never_as_null(toy):
    scores, Y, years = toy
    layer = DecisionLayer().fit(scores, Y, years)
    saved = json.loads(json.dumps(layer.to_dict()))
    assert saved["format_version"] == 3 and saved["thresholds"][GENRES[NOISE]] is None
    assert saved["settings"]["precision_floor"] == 0.3
    again = DecisionLayer.from_dict(saved)
    pairs = zip(again.predict_tiers(scores, years), layer.predict_tiers(scores, years), strict=True)
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)


def _format_2(layer: DecisionLayer) -> dict:
    """What the layer's JSON looked like before the tiers (format 2)."""
    data = json.loads(json.dumps(layer.to_dict()))
    data["format_version"] = 2
    for key in ("precision_floor", "max_maybe", "maybe_per_poster"):
        del data["settings"][key]
    del data["maybe_thresholds"], data["year_maybe_thresholds"]
    return data


def test_a_decision_file_from_before_the_tiers_decides_as_it_did(toy):
    scores, Y, years = toy
    old = DecisionLayer(precision_floor=0, max_maybe=0).fit(scores, Y, years)
    loaded = DecisionLayer.from_dict(_format_2(old))
    assert loaded.precision_floor == 0 and loaded.max_maybe == 0
    _, genres, maybe = loaded.predict_tiers(scores, years)
    np.testing.assert_array_equal(genres, old.predict(scores, years))
    assert maybe.sum() == 0


def test_an_old_pipeline_serves_an_empty_maybe(tmp_path):
    from helpers import write_image

    from posterml.classifiers.pipeline import PosterPipeline
    from posterml.data.images import load_image
    from posterml.features.pixels import PixelPCAFeaturizer

    paths = [str(write_image(tmp_path / "posters" / f"p{i}.jpg", seed=i)) for i in range(12)]
    Y = np.zeros((12, 19), np.uint8)
    Y[::2, 0], Y[1::3, 6] = 1, 1
    featurizer = PixelPCAFeaturizer((30, 20), n_components=4, batch_size=5, progress=False)
    X = featurizer.fit(paths).transform_paths(paths).features
    model = ClassicClassifier("logreg").fit(X, Y)
    layer = DecisionLayer(precision_floor=0, max_maybe=0, min_positives=1)
    layer.fit(model.predict_scores(X), Y)
    PosterPipeline(featurizer, model, layer, {"family": "logreg"}).save(tmp_path / "model")
    # As saved then: format 2, under the file's old name.
    (tmp_path / "model" / "decision_rule.json").unlink()
    (tmp_path / "model" / "decision.json").write_text(json.dumps(_format_2(layer)))

    frame = PosterPipeline.load(tmp_path / "model").predict_frame([load_image(p) for p in paths])
    assert list(frame.columns[:2]) == ["genres", "maybe"]
    assert frame["maybe"].map(len).sum() == 0 and frame["genres"].map(len).min() >= 1


def test_tier_metrics_add_up():
    Y = np.array([[1, 0], [1, 1], [0, 1], [1, 0]] + [[0, 0]] * 4, dtype=np.uint8)
    Y = np.pad(Y, ((0, 0), (0, 17)))
    genres, maybe = np.zeros_like(Y), np.zeros_like(Y)
    genres[0, 0] = genres[2, 1] = 1
    maybe[1, 0] = maybe[4, 0] = maybe[1, 1] = 1
    metrics = tier_metrics(Y, genres, maybe, "test")
    assert metrics["test_maybe_precision_action"] == 0.5
    assert metrics["test_maybe_recall_action"] == pytest.approx(1 / 3)
    assert metrics["test_maybe_per_poster"] == 3 / 8
    assert metrics["test_found_recall_micro"] == 4 / 5
    table = tier_report_frame(Y, genres, maybe).set_index("genre")
    assert table.loc["Action", "found"] == pytest.approx(2 / 3)
    assert table.loc["Adventure", ["genres_named", "maybe_named", "found"]].tolist() == [1, 1, 1.0]


def test_batch_scoring_reads_from_the_signature_whether_a_model_has_maybe(tmp_path):
    """Spark asks the served model for the columns it declares: a model logged before the
    tiers runs its own posterml, answers no maybe, and gets an empty maybe column instead."""
    from mlflow.models import Model, ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    from posterml.batch.spark import model_has_maybe
    from posterml.serving.pyfunc import SCORE_COLUMNS, _signature

    old_outputs = Schema(
        [ColSpec(Array("string"), "genres")] + [ColSpec("double", c) for c in SCORE_COLUMNS]
    )
    for name, signature, has in (
        ("old", ModelSignature(inputs=_signature().inputs, outputs=old_outputs), False),
        ("new", _signature(), True),
    ):
        (tmp_path / name).mkdir()
        Model(signature=signature).save(tmp_path / name / "MLmodel")
        assert model_has_maybe(tmp_path / name) is has
