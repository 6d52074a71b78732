"""The final model of a run: a classifier and a decision layer, validated honestly.

No poster's own label ever sets its threshold: with ``cv_folds`` >= 2 the decision layer
learns from out-of-fold scores over train+val; validation decisions are always cross-fitted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from posterml.classifiers.base import GenreClassifier
from posterml.classifiers.fusion import DetailView, LateFusion, TextView
from posterml.evaluation.decision import DecisionLayer, cross_fit_predict
from posterml.modeling.families import Family
from posterml.modeling.inputs import FeatureSets
from posterml.modeling.settings import ExperimentConfig

log = logging.getLogger("posterml")


@dataclass
class Views:
    """The views a final model fuses with the whole poster's scores (``None``: not read)."""

    detail: DetailView | None = None
    text: TextView | None = None

    @property
    def name(self) -> str:
        """``image``, ``image+ocr``, ``image+detail`` or ``image+ocr+detail``."""
        from posterml.modeling.settings import DETAIL_VIEW, IMAGE_VIEW, OCR_VIEW, views_name

        parts = {IMAGE_VIEW}
        if self.text is not None:
            parts.add(OCR_VIEW)
        if self.detail is not None:
            parts.add(DETAIL_VIEW)
        return views_name(parts)

    def picture_scores(self, image_scores: np.ndarray, crops: np.ndarray | None) -> np.ndarray:
        """The whole poster's scores, fused with its detail's when there is a detail view."""
        if self.detail is None:
            return image_scores
        return self.detail.fused_scores(image_scores, crops)


@dataclass
class Decided:
    """Labels, decisions (asserted ``y_pred``, and ``maybe``) and release years of one
    evaluated split."""

    Y: np.ndarray
    y_pred: np.ndarray
    years: np.ndarray
    y_pred_with_year: np.ndarray | None = None
    maybe: np.ndarray | None = None


def decision_layer(config: ExperimentConfig) -> DecisionLayer:
    """The unfitted decision layer these settings ask for (``posterml.evaluation.decision``)."""
    return DecisionLayer(
        calibrate=config.tune_thresholds,
        tune_thresholds=config.tune_thresholds,
        rate_cap=config.rate_cap,
        min_positives=config.min_positives,
        min_one_genre=config.min_one_genre,
        max_genres=config.max_genres,
        precision_floor=config.precision_floor,
        max_maybe=config.max_maybe,
        maybe_per_poster=config.maybe_per_poster,
    )


def fit_classifier(
    family: Family,
    params: dict,
    seed: int,
    X,
    Y,
    X_val=None,
    Y_val=None,
    sample_weight: np.ndarray | None = None,
) -> GenreClassifier:
    """A fitted classifier. Families that stop early on validation data and get none hold out
    a seeded 10% of ``X`` for it, so out-of-fold scores never see their own labels.

    ``sample_weight`` (one per row of ``X``) reaches classifiers whose ``fit`` takes it (the
    SVM); it is passed only when given, so the other families are untouched."""
    classifier = family.classifier(params, seed)
    weights = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)}
    if family.early_stopping and X_val is None and len(X) >= 20:
        rng = np.random.default_rng(seed)
        held = np.zeros(len(X), dtype=bool)
        held[rng.choice(len(X), max(2, len(X) // 10), replace=False)] = True
        weights = {k: w[~held] for k, w in weights.items()}
        return classifier.fit(X[~held], Y[~held], X[held], Y[held], **weights)
    return classifier.fit(X, Y, X_val, Y_val, **weights)


def cross_fitted_scores(
    fit_rows: Callable[[np.ndarray], GenreClassifier],
    X,
    Y: np.ndarray,
    config: ExperimentConfig,
    progress: bool = False,
) -> np.ndarray:
    """Scores for every row of ``X`` from a model that never saw it: ``fit_rows(rows)``
    fits one on those rows, once per fold of ``config.cv_folds`` folds stratified on ``Y``.
    The folds depend only on ``Y`` and the seed, so every view is cross-fitted alike."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    from posterml.progress import progress_bar

    folds = MultilabelStratifiedKFold(
        n_splits=config.cv_folds, shuffle=True, random_state=config.seed
    )
    scores = np.zeros(Y.shape, dtype=np.float64)
    with progress_bar(config.cv_folds, "out-of-fold models", progress, unit="fold") as bar:
        for k, (fitted_rows, held_rows) in enumerate(folds.split(np.zeros(len(Y)), Y)):
            log.info("out-of-fold scores: fold %d/%d", k + 1, config.cv_folds)
            scores[held_rows] = fit_rows(fitted_rows).predict_scores(X[held_rows])
            bar.update()
    return scores


def out_of_fold_scores(
    family: Family,
    params: dict,
    config: ExperimentConfig,
    X,
    Y,
    sample_weight: np.ndarray | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Scores for every row from a model that never saw it (``config.cv_folds`` folds),
    each fold's model fitted with its rows' ``sample_weight`` when given; ``progress``
    shows a bar (one fold on 5,000 posters takes a minute on 2 cores)."""
    weights = None if sample_weight is None else np.asarray(sample_weight)

    def fit_rows(rows: np.ndarray) -> GenreClassifier:
        w = None if weights is None else weights[rows]
        return fit_classifier(family, params, config.seed, X[rows], Y[rows], sample_weight=w)

    return cross_fitted_scores(fit_rows, X, Y, config, progress)


def text_classifier() -> GenreClassifier:
    """The classifier of the words view (``posterml.classifiers.text``)."""
    from posterml.classifiers.text import TfidfLogisticClassifier

    return TfidfLogisticClassifier()


def text_scores(
    config: ExperimentConfig, texts: np.ndarray, Y: np.ndarray, cross_fitted: bool
) -> np.ndarray:
    """The text classifier's scores of ``texts``: cross-fitted on the same folds as the
    picture's (``cross_fitted``), else in-sample, which flatters the words: prefer folds."""
    if not cross_fitted:
        return text_classifier().fit(texts, Y).predict_scores(texts)

    def fit_rows(rows: np.ndarray) -> GenreClassifier:
        return text_classifier().fit(texts[rows], Y[rows])

    return cross_fitted_scores(fit_rows, texts, Y, config)


def fit_text_view(
    config: ExperimentConfig,
    texts: np.ndarray,
    Y: np.ndarray,
    years: np.ndarray,
    image_scores: np.ndarray,
    words_scores: np.ndarray,
    reader,
) -> tuple[TextView, np.ndarray]:
    """The words view and the fused scores the decision layer learns from.

    ``image_scores`` and ``words_scores`` (``text_scores``) are the two views' scores of the
    same posters. The fusion's two weights and bias per genre are fitted on them, then
    applied to them: that is the one in-sample step, small next to thousands of posters.
    The picture's own decision layer is fitted too, for OCR off.
    """
    fusion = LateFusion().fit([image_scores, words_scores], Y)
    image_layer = decision_layer(config).fit(image_scores, Y, years)
    view = TextView(reader, text_classifier().fit(texts, Y), fusion, image_layer)
    return view, fusion.predict_scores([image_scores, words_scores])


def fit_detail_view(
    classifier: GenreClassifier, image_scores: np.ndarray, detail_scores: np.ndarray, Y
) -> tuple[DetailView, np.ndarray]:
    """The detail view (``classifier`` fitted on the crops' features) and the picture's
    scores fused with it. ``image_scores`` and ``detail_scores`` are the two views' scores
    of the same posters, out-of-fold where the run has folds; the fusion is fitted on them
    and applied to them, as ``fit_text_view`` does."""
    fusion = LateFusion().fit([image_scores, detail_scores], Y)
    return DetailView(classifier, fusion), fusion.predict_scores([image_scores, detail_scores])


def fit_and_decide(
    family: Family,
    params: dict,
    config: ExperimentConfig,
    features: FeatureSets,
    fitted: GenreClassifier | None = None,
) -> tuple[GenreClassifier, DecisionLayer, Decided, Views]:
    """The final model: classifier, fitted decision layer, honest validation decisions, and
    the views fused with the picture: the detail view when the features hold crop features
    (the same family and params on them, ``fit_detail_view``), then the words view when they
    hold texts (``fit_text_view``, on the picture's scores with its detail).

    With ``cv_folds`` >= 2 the decision layer is fitted on out-of-fold scores over train+val
    and the classifier is refitted on all of train+val (the ``CalibratedClassifierCV(...,
    ensemble=False)`` recipe); ``val`` metrics are then cross-validated over train+val.
    With ``cv_folds`` = 0 the classifier learns from train and the layer from validation;
    ``fitted``, the search's own classifier for these params, is then used as it is.
    Either way validation decisions are cross-fitted (``cross_fit_predict``).
    """
    X, Y, years = features.X, features.Y, features.years
    if config.cv_folds >= 2:
        X_dev = np.concatenate([X["train"], X["val"]])
        Y_dev = np.concatenate([Y["train"], Y["val"]])
        years_dev = np.concatenate([years["train"], years["val"]])
        dev_scores = out_of_fold_scores(family, params, config, X_dev, Y_dev)
        classifier = fit_classifier(family, params, config.seed, X_dev, Y_dev)
    else:
        Y_dev, years_dev = Y["val"], years["val"]
        classifier = fitted or fit_classifier(
            family, params, config.seed, X["train"], Y["train"], X["val"], Y["val"]
        )
        dev_scores = classifier.predict_scores(X["val"])
    views = Views()
    if features.crops is not None:
        crops = features.crops
        if config.cv_folds >= 2:
            crops_dev = np.concatenate([crops["train"], crops["val"]])
            detail_scores = out_of_fold_scores(family, params, config, crops_dev, Y_dev)
            detail = fit_classifier(family, params, config.seed, crops_dev, Y_dev)
        else:
            detail = fit_classifier(
                family, params, config.seed, crops["train"], Y["train"], crops["val"], Y["val"]
            )
            detail_scores = detail.predict_scores(crops["val"])
        views.detail, dev_scores = fit_detail_view(detail, dev_scores, detail_scores, Y_dev)
    if features.texts is not None:
        texts = features.texts
        dev_texts = (
            np.concatenate([texts["train"], texts["val"]]) if config.cv_folds >= 2 else texts["val"]
        )
        words = text_scores(config, dev_texts, Y_dev, config.cv_folds >= 2)
        views.text, dev_scores = fit_text_view(
            config, dev_texts, Y_dev, years_dev, dev_scores, words, features.reader
        )
    layer = decision_layer(config).fit(dev_scores, Y_dev, years_dev)
    _, dev_pred, dev_maybe = cross_fit_predict(layer, dev_scores, Y_dev, seed=config.seed)
    return classifier, layer, Decided(Y_dev, dev_pred, years_dev, maybe=dev_maybe), views


def decide_splits(
    classifier: GenreClassifier,
    layer: DecisionLayer,
    features: FeatureSets,
    splits: list[str],
    views: Views | None = None,
) -> dict[str, Decided]:
    """Decisions on held-out splits, without and with the posters' release years."""
    views = views or Views()
    decided = {}
    for split in splits:
        if not len(features.Y.get(split, [])):
            continue
        scores = classifier.predict_scores(features.X[split])
        crops = features.crops[split] if features.crops is not None else None
        scores = views.picture_scores(scores, crops)
        if views.text is not None:
            scores = views.text.fused_scores(scores, features.texts[split])
        years = features.years[split]
        with_year = layer.predict(scores, years) if layer.decade_prevalence_ else None
        _, genres, maybe = layer.predict_tiers(scores)
        decided[split] = Decided(features.Y[split], genres, years, with_year, maybe)
    return decided
