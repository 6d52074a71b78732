"""Classifiers: the shared-kernel SVM equals sklearn's, every family fits and round-trips."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import toy_features
from sklearn.svm import SVC

from posterml.classifiers.classic import ClassicClassifier
from posterml.classifiers.keras_models import MLPClassifier, ScratchCNNClassifier, positive_weights
from posterml.classifiers.loading import load_classifier
from posterml.classifiers.svm import DistanceCache, RBFSVMClassifier


def _toy(n=200, d=16, seed=0):
    return toy_features(n, d, seed)


def test_shared_kernel_svm_matches_sklearn_and_keeps_only_support_vectors():
    X, Y = _toy()
    X_new = np.random.default_rng(1).normal(size=(30, 16)).astype(np.float32)
    model = RBFSVMClassifier(
        C=3.0, gamma_scale=0.7, class_weight="balanced", distance_cache=DistanceCache()
    ).fit(X, Y)
    gamma = 0.7 / (X.shape[1] * X.var())
    for j in (0, 3, 6):
        reference = SVC(C=3.0, gamma=gamma, class_weight="balanced").fit(X, Y[:, j])
        np.testing.assert_allclose(
            model.decision_function(X_new)[:, j], reference.decision_function(X_new), atol=1e-6
        )
    assert len(model.support_vectors_) <= len(X)
    scores = model.predict_scores(X_new)
    assert scores.shape == (30, 19) and (scores[:, 1] < 0.01).all()  # never-seen genre
    assert model.distance_cache is None  # the trial cache is not part of the fitted model


def test_svm_keeps_support_norms_and_gives_the_same_numbers(tmp_path):
    """The float64 support vectors and their norms are made once (not per request), and the
    scores are bit-identical to computing them from the saved float32 vectors each time."""
    from posterml.classifiers.svm import squared_distances

    X, Y = _toy()
    X_new = np.random.default_rng(3).normal(size=(7, 16)).astype(np.float32)
    model = RBFSVMClassifier(C=3.0, gamma_scale=0.7).fit(X, Y)
    kernel = np.exp(-model.gamma_ * squared_distances(X_new, model.support_vectors_))
    j = next(k for k, b in enumerate(model.intercepts_) if b is not None)
    expected = kernel[:, model.support_index_[j]] @ model.duals_[j] + model.intercepts_[j]
    assert np.array_equal(model.decision_function(X_new)[:, j], expected)
    terms = model._support_terms()
    assert model._support_terms() is terms  # kept, not recomputed
    model.save(tmp_path / "svm")
    loaded = load_classifier(tmp_path / "svm")
    assert loaded._support64 is None  # not saved: derived again from the float32 vectors
    assert np.array_equal(loaded.decision_function(X_new), model.decision_function(X_new))
    assert loaded.support_vectors_.dtype == np.float32


def test_svm_sample_weight_scales_c_per_poster():
    X, Y = _toy(n=120)
    X_new = np.random.default_rng(2).normal(size=(20, 16)).astype(np.float32)
    plain = RBFSVMClassifier(C=2.0).fit(X, Y)
    ones = RBFSVMClassifier(C=2.0).fit(X, Y, sample_weight=np.ones(len(X)))
    np.testing.assert_allclose(ones.decision_function(X_new), plain.decision_function(X_new))
    # Weight 2 on the first 30 posters is their C doubled: as if each appeared twice.
    weights = np.r_[np.full(30, 2.0), np.ones(90)]
    weighted = RBFSVMClassifier(C=2.0).fit(X, Y, sample_weight=weights)
    gamma = 1.0 / (X.shape[1] * X.var())
    for j in (0, 6):
        reference = SVC(C=2.0, gamma=gamma).fit(X, Y[:, j], sample_weight=weights)
        np.testing.assert_allclose(
            weighted.decision_function(X_new)[:, j], reference.decision_function(X_new), atol=1e-6
        )
    assert not np.allclose(weighted.decision_function(X_new), plain.decision_function(X_new))
    with pytest.raises(ValueError, match="sample_weight"):
        RBFSVMClassifier().fit(X, Y, sample_weight=np.ones(5))


def test_out_of_fold_scores_pass_weights_to_each_fold():
    from posterml.modeling.families import get_family
    from posterml.modeling.fitting import out_of_fold_scores
    from posterml.modeling.settings import ExperimentConfig

    X, Y = _toy(n=90)
    family, params = get_family("resnet_svm"), {"C": 2.0, "gamma_scale": 1.0}
    config = ExperimentConfig("resnet_svm", cv_folds=3)
    plain = out_of_fold_scores(family, params, config, X, Y)
    ones = out_of_fold_scores(family, params, config, X, Y, sample_weight=np.ones(90))
    np.testing.assert_allclose(ones, plain)
    heavy = out_of_fold_scores(
        family, params, config, X, Y, sample_weight=np.r_[[5.0] * 30, [1.0] * 60]
    )
    assert not np.allclose(heavy, plain)


def test_distance_cache_reuses_by_content():
    X, _ = _toy()
    cache = DistanceCache()
    first = cache.get(X, X)
    assert cache.get(X.copy(), X.copy()) is first


@pytest.mark.parametrize("kind", ["knn", "logreg", "random_forest"])
def test_classic_kinds_learn_and_round_trip(kind, tmp_path):
    X, Y = _toy(n=300)
    model = ClassicClassifier(kind=kind, n_estimators=50, class_weight="balanced").fit(X, Y)
    scores = model.predict_scores(X)
    assert scores.shape == (300, 19)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(Y[:, 6], scores[:, 6]) > 0.8
    model.save(tmp_path)
    np.testing.assert_allclose(load_classifier(tmp_path).predict_scores(X), scores)


def test_positive_weights():
    Y = np.zeros((100, 19), np.uint8)
    Y[:10, 0] = 1
    assert positive_weights(Y, "none")[0] == 1
    assert positive_weights(Y, "balanced")[0] == pytest.approx(9.0)
    assert positive_weights(Y, "sqrt")[0] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="positive weighting"):
        positive_weights(Y, "heavy")


@pytest.mark.slow
def test_keras_classifiers_fit_and_round_trip(tmp_path):
    X, Y = _toy(n=256)
    mlp = MLPClassifier(
        epochs=40, learning_rate=0.05, patience=40, positive_weighting="sqrt", hidden=(32, 16)
    ).fit(X, Y, X[:64], Y[:64])
    scores = mlp.predict_scores(X)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(Y[:, 6], scores[:, 6]) > 0.8
    mlp.save(tmp_path / "mlp")
    np.testing.assert_allclose(
        load_classifier(tmp_path / "mlp").predict_scores(X), scores, atol=1e-5
    )

    images = np.random.default_rng(0).integers(0, 255, (40, 24, 16, 3), dtype=np.uint8)
    cnn = ScratchCNNClassifier(epochs=2, filters=(4, 4, 4), dense_units=8).fit(images, Y[:40])
    cnn.save(tmp_path / "cnn")
    np.testing.assert_allclose(
        load_classifier(tmp_path / "cnn").predict_scores(images),
        cnn.predict_scores(images),
        atol=1e-5,
    )
