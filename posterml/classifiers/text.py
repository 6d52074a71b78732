"""Genres from the words OCR read on a poster: TF-IDF n-grams + one logistic regression per genre.

OCR of posters is noisy ("“ToY ee} »@ STORY"), so words alone miss much: character 3-5 grams
inside word boundaries catch a title or a name read with one wrong letter, word 1-2 grams
catch "a film by" and "the true story". Inputs are arrays of strings (one text per poster);
an empty text gets each genre's prior score.

Saved as data like every classifier: the vocabularies as unicode arrays, the idf weights and
per-genre coefficients as numbers. Loading rebuilds scikit-learn's ``CountVectorizer`` with a
fixed vocabulary; the TF-IDF weighting is done here (sublinear tf, l2 norm), so no fitted
scikit-learn object is ever deserialised.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from posterml.classifiers.base import GenreClassifier, constant_columns, register_classifier

# (name, analyzer, n-gram range, min_df): the two vocabularies, in the order they are stacked.
_VOCABULARIES = (
    ("words", "word", (1, 2), 2),
    ("chars", "char_wb", (3, 5), 3),
)
_TOKEN = r"(?u)\b[^\W\d_]{2,}\b"  # letters only: OCR's digits and symbols are mostly noise


def _vectorizer(analyzer: str, ngrams: tuple[int, int], **kwargs) -> CountVectorizer:
    return CountVectorizer(
        analyzer=analyzer,
        ngram_range=ngrams,
        lowercase=True,
        token_pattern=_TOKEN if analyzer == "word" else None,
        dtype=np.float64,
        **kwargs,
    )


@register_classifier("tfidf_logistic", format_version=1)
class TfidfLogisticClassifier(GenreClassifier):
    """One-vs-rest logistic regression on TF-IDF word and character n-grams of OCR text.

    ``C`` is the inverse regularisation strength, ``max_terms`` caps each vocabulary (most
    frequent first), ``class_weight`` is ``"balanced"`` or ``None``.
    """

    def __init__(
        self, C: float = 4.0, max_terms: int = 30000, class_weight: str | None = "balanced"
    ) -> None:
        self.C = C
        self.max_terms = max_terms
        self.class_weight = None if class_weight in (None, "none") else class_weight

    def _matrix(self, texts) -> sparse.csr_matrix:
        texts = [str(t) for t in np.asarray(texts, dtype=str).ravel()]
        blocks = [
            normalize(self._sublinear(vec.transform(texts)).multiply(idf).tocsr())
            for vec, idf in zip(self.vectorizers_, self.idf_, strict=True)
        ]
        return sparse.hstack(blocks, format="csr")

    @staticmethod
    def _sublinear(counts: sparse.csr_matrix) -> sparse.csr_matrix:
        counts = counts.tocsr(copy=True)
        counts.data = 1.0 + np.log(counts.data)
        return counts

    def fit(self, X, Y, X_val=None, Y_val=None) -> TfidfLogisticClassifier:
        texts = [str(t) for t in np.asarray(X, dtype=str).ravel()]
        Y = np.asarray(Y)
        self.vectorizers_, self.idf_ = [], []
        for _, analyzer, ngrams, min_df in _VOCABULARIES:
            vec = _vectorizer(analyzer, ngrams, min_df=min(min_df, max(1, len(texts) // 50)))
            vec.max_features = self.max_terms
            try:
                counts = vec.fit_transform(texts)
            except ValueError:  # no term at all (every text empty): an empty vocabulary
                vec = _vectorizer(analyzer, ngrams, vocabulary=[" "])
                counts = vec.fit_transform(texts)
            tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
            self.vectorizers_.append(_vectorizer(analyzer, ngrams, vocabulary=vec.vocabulary_))
            self.vectorizers_[-1].fit([])
            self.idf_.append(tfidf.idf_)
        matrix = self._matrix(texts)
        constant = constant_columns(Y)
        self.coef_ = np.zeros((Y.shape[1], matrix.shape[1]))
        self.intercept_ = np.where(Y.mean(axis=0) > 0.5, 50.0, -50.0)
        for j in np.flatnonzero(~constant):
            model = LogisticRegression(
                C=self.C, class_weight=self.class_weight, solver="liblinear", max_iter=1000
            )
            model.fit(matrix, Y[:, j])
            self.coef_[j] = model.coef_[0]
            self.intercept_[j] = model.intercept_[0]
        return self

    def decision_function(self, X) -> np.ndarray:
        return np.asarray(self._matrix(X) @ self.coef_.T) + self.intercept_

    def predict_scores(self, X) -> np.ndarray:
        return expit(self.decision_function(X))

    def _save_fitted(self, directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {"coef": self.coef_, "intercept": self.intercept_}
        for (name, *_), vec, idf in zip(_VOCABULARIES, self.vectorizers_, self.idf_, strict=True):
            terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
            arrays[f"{name}_terms"] = np.array(terms, dtype=str)
            arrays[f"{name}_idf"] = np.asarray(idf, np.float64)
        return {}, arrays

    def _load_fitted(
        self, fitted: Mapping[str, Any], arrays: Mapping[str, np.ndarray], directory: Path
    ) -> None:
        self.vectorizers_, self.idf_ = [], []
        width = 0
        for name, analyzer, ngrams, _ in _VOCABULARIES:
            terms, idf = arrays[f"{name}_terms"], arrays[f"{name}_idf"]
            if terms.dtype.kind != "U" or terms.ndim != 1 or idf.shape != terms.shape:
                raise ValueError(f"{name}: terms must be strings, one idf weight each")
            vocabulary = {str(t): k for k, t in enumerate(terms)}
            if len(vocabulary) != len(terms):
                raise ValueError(f"{name}: repeated terms")
            vec = _vectorizer(analyzer, ngrams, vocabulary=vocabulary)
            vec.fit([])
            self.vectorizers_.append(vec)
            self.idf_.append(idf.astype(np.float64))
            width += len(terms)
        self.coef_ = arrays["coef"].astype(np.float64)
        self.intercept_ = arrays["intercept"].astype(np.float64)
        if self.coef_.ndim != 2 or self.coef_.shape[1] != width:
            raise ValueError(f"coefficients {self.coef_.shape} do not match {width} terms")
        if self.intercept_.shape != (len(self.coef_),):
            raise ValueError("one intercept per genre expected")
