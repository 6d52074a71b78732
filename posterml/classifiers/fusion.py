"""Late fusion of the views of a poster: per-genre stacking learnt on out-of-fold scores.

Each view (the picture's classifier, the detail crops' classifier, the OCR text's
classifier) scores every genre on its own. ``LateFusion`` learns, genre by genre, how much
each view's log-odds count: a small logistic regression fitted on out-of-fold scores of the
training posters, so a view that says nothing about a genre gets a weight near zero there,
and a view whose scores are sharp where the picture is vague gets more. The decision layer
then calibrates and cuts the fused scores exactly as it does a single classifier's.

``DetailView`` is what a pipeline needs to use the detail: the classifier of the crops'
features (``posterml.features.crops``) and its fusion with the whole poster's scores; the
fused scores are "the picture" from then on. ``TextView`` is what a pipeline needs to use
the words: the OCR reader's settings, the text classifier, the fusion, and the decision
layer of the picture alone (used when OCR is switched off, so an answer without the words
is decided by thresholds fitted for the picture's scores). Saved as data: JSON and ``.npz``
arrays, the classifiers in their own folders.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression

from posterml.arrays import load_arrays, read_json_object, save_arrays
from posterml.classifiers.base import GenreClassifier
from posterml.evaluation.decision import DecisionLayer
from posterml.features.crops import CROPS_VERSION, N_CROPS
from posterml.features.ocr import OcrReader

# Scores are clipped before logit so a 0 or 1 from a view stays finite.
_EPS = 1e-6
FUSION_FILE = "fusion.npz"
READER_FILE = "reader.json"
IMAGE_LAYER_FILE = "image_decision_rule.json"
CROPS_FILE = "crops.json"


def _log_odds(scores: np.ndarray) -> np.ndarray:
    return logit(np.clip(np.asarray(scores, dtype=np.float64), _EPS, 1 - _EPS))


class LateFusion:
    """Per-genre logistic regression on the views' log-odds (``C``: inverse regularisation)."""

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, views: list[np.ndarray], Y: np.ndarray) -> LateFusion:
        """``views``: one (n, genres) score matrix per view, out-of-fold; ``Y`` the labels."""
        Y = np.asarray(Y)
        stacked = np.stack([_log_odds(v) for v in views], axis=-1)  # (n, genres, views)
        n_genres, n_views = Y.shape[1], len(views)
        # A genre no fold could learn keeps the first view's scores (weight 1, no shift).
        self.weights_ = np.zeros((n_genres, n_views))
        self.weights_[:, 0] = 1.0
        self.bias_ = np.zeros(n_genres)
        for j in range(n_genres):
            if Y[:, j].min() == Y[:, j].max():
                continue
            model = LogisticRegression(C=self.C, max_iter=1000)
            model.fit(stacked[:, j, :], Y[:, j])
            self.weights_[j] = model.coef_[0]
            self.bias_[j] = model.intercept_[0]
        return self

    def predict_scores(self, views: list[np.ndarray]) -> np.ndarray:
        stacked = np.stack([_log_odds(v) for v in views], axis=-1)
        return expit(np.einsum("ngv,gv->ng", stacked, self.weights_) + self.bias_)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_, "bias": self.bias_, "C": np.asarray(self.C)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LateFusion:
        fusion = cls(float(arrays["C"]))
        fusion.weights_ = arrays["weights"].astype(np.float64)
        fusion.bias_ = arrays["bias"].astype(np.float64)
        if fusion.weights_.ndim != 2 or fusion.bias_.shape != (len(fusion.weights_),):
            raise ValueError("fusion: one weight row and one bias per genre expected")
        return fusion


def _save_view(directory: Path, classifier: GenreClassifier, fusion: LateFusion) -> Path:
    """A view's classifier (own folder) and fusion weights under ``directory``, created."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    classifier.save(directory / "classifier")
    save_arrays(directory / FUSION_FILE, fusion.to_arrays())
    return directory


def _load_view(directory: Path) -> tuple[GenreClassifier, LateFusion]:
    """What ``_save_view`` wrote: the classifier and the fusion."""
    from posterml.classifiers.loading import load_classifier

    classifier = load_classifier(directory / "classifier")
    return classifier, LateFusion.from_arrays(load_arrays(directory / FUSION_FILE))


@dataclass
class DetailView:
    """The detail view of a pipeline: the crops' classifier and its fusion with the picture."""

    classifier: GenreClassifier
    fusion: LateFusion

    def fused_scores(self, image_scores: np.ndarray, crop_features: np.ndarray) -> np.ndarray:
        """The whole poster's scores fused with those of its crops' mean features."""
        detail_scores = self.classifier.predict_scores(crop_features)
        return self.fusion.predict_scores([image_scores, detail_scores])

    def save(self, directory: Path) -> None:
        directory = _save_view(directory, self.classifier, self.fusion)
        # Written last: a folder with crops.json holds a whole detail view.
        spec = {"crops": N_CROPS, "version": CROPS_VERSION}
        (directory / CROPS_FILE).write_text(json.dumps(spec) + "\n")

    @classmethod
    def load(cls, directory: Path) -> DetailView:

        directory = Path(directory)
        spec = read_json_object(directory / CROPS_FILE, "no saved detail view here")
        if spec != {"crops": N_CROPS, "version": CROPS_VERSION}:
            raise ValueError(
                f"{directory / CROPS_FILE}: crops {spec} are not the ones this posterml cuts "
                f"({N_CROPS} crops, version {CROPS_VERSION})"
            )
        return cls(*_load_view(directory))


@dataclass
class TextView:
    """The words view of a pipeline: reader, text classifier, fusion, the picture's own layer."""

    reader: OcrReader
    classifier: GenreClassifier
    fusion: LateFusion
    image_layer: DecisionLayer  # decides the picture's scores (with its detail) alone

    def fused_scores(self, image_scores: np.ndarray, texts) -> np.ndarray:
        """The picture's scores (with its detail, when the pipeline has it) fused with the
        scores of ``texts`` (one per poster)."""
        text_scores = self.classifier.predict_scores(np.asarray(texts, dtype=str))
        return self.fusion.predict_scores([image_scores, text_scores])

    def save(self, directory: Path) -> None:
        directory = _save_view(directory, self.classifier, self.fusion)
        (directory / IMAGE_LAYER_FILE).write_text(json.dumps(self.image_layer.to_dict()))
        # Written last: a folder with reader.json holds a whole text view.
        (directory / READER_FILE).write_text(json.dumps(asdict(self.reader), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> TextView:

        directory = Path(directory)
        spec = read_json_object(directory / READER_FILE, "no saved text view here")
        fields = {"height", "psm", "language", "timeout_s", "max_chars"}
        if set(spec) != fields:
            raise ValueError(f"{directory / READER_FILE}: expected the fields {sorted(fields)}")
        reader = OcrReader(**spec)
        layer = DecisionLayer.from_dict(
            read_json_object(directory / IMAGE_LAYER_FILE, "no decision rule for the picture alone")
        )
        return cls(reader, *_load_view(directory), layer)
