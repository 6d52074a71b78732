"""The deployable pipeline: featurizer + classifier + decision layer, saved as one folder.

With a detail view (``posterml.classifiers.fusion.DetailView``) the pipeline also scores three
square crops of each poster (``posterml.features.crops``) and fuses them with the whole
poster's scores: that is "the picture" from then on. With a text view (``TextView``) it also
reads the words on each poster and fuses their genre scores with the picture's;
``read_text = False`` switches that off (cheaper answers from the picture alone, decided by
the picture's own decision layer).

It is a model-layer object: the runner builds it, ``posterml predict`` and the benchmarks use
it in-process, and serving only wraps it (``posterml.serving.pyfunc``). Every part is saved
in its own safe format (JSON and arrays, a safe-mode Keras file): loading runs no code from
the model's files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from posterml.classifiers.fusion import DetailView, TextView
from posterml.evaluation.decision import DecisionLayer
from posterml.genres import GENRES, genre_slug
from posterml.names import DECISION_RULE_FILE, TEXT_COLUMN

# The per-genre probability columns of a prediction, in GENRES order.
SCORE_COLUMNS = [f"score_{genre_slug(g)}" for g in GENRES]
TEXT_VIEW_DIR = "text_view"
DETAIL_VIEW_DIR = "detail_view"


class Prepared(NamedTuple):
    """One decoded poster as the pipeline keeps it: the featurizer's small pixel array,
    the grayscale page OCR will read when it reads the words, and the resized square crops
    with a detail view (``None`` otherwise)."""

    pixels: object
    page: object = None
    crops: object = None


def ranked_genres(proba: np.ndarray, y_pred: np.ndarray) -> list[list[str]]:
    """Each row's predicted genre names, most probable first."""
    order = np.argsort(-np.asarray(proba), axis=1, kind="stable")
    return [
        [GENRES[j] for j in row_order if chosen[j]]
        for row_order, chosen in zip(order, y_pred, strict=True)
    ]


class PosterPipeline:
    """Featurizer + classifier + decision layer, usable in-process (batch prediction, tests)."""

    def __init__(
        self,
        featurizer,
        classifier,
        layer: DecisionLayer,
        meta: dict,
        text: TextView | None = None,
        detail: DetailView | None = None,
    ) -> None:
        self.featurizer = featurizer
        self.classifier = classifier
        self.layer = layer
        self.meta = meta
        self.text = text
        self.detail = detail
        self.read_text = text is not None

    @property
    def crop_features(self):
        """The detail view's featurizer (``CropFeatures`` on the pipeline's backbone)."""
        from posterml.features.crops import CropFeatures

        return CropFeatures(self.featurizer)

    @property
    def decision(self) -> DecisionLayer:
        """The decision layer in use: the fused one, or the picture's own with OCR off."""
        if self.text is not None and not self.read_text:
            return self.text.image_layer
        return self.layer

    @property
    def image_size(self) -> tuple[int, int]:
        """What the decoder may shrink a poster towards: the featurizer's size, or OCR's
        (larger) when the pipeline reads the words."""
        size = self.featurizer.image_size
        if self.read_text:
            page = self.text.reader.min_size
            size = (max(size[0], page[0]), max(size[1], page[1]))
        return size

    def prepare_image(self, image) -> Prepared:
        """What the pipeline keeps of a decoded poster (a server keeps this, not the image)."""
        page = self.text.reader.page(image) if self.read_text else None
        crops = self.crop_features.prepare_image(image) if self.detail is not None else None
        return Prepared(self.featurizer.prepare_image(image), page, crops)

    def texts(self, images: list) -> list[str]:
        """What OCR reads on each poster (decoded images or ``Prepared``)."""
        pages = [im.page if isinstance(im, Prepared) else im for im in images]
        return self.text.reader.read_images(pages)

    def features(self, images: list) -> np.ndarray | None:
        """The classifier's inputs for ``images`` (None for none)."""
        pixels = [im.pixels if isinstance(im, Prepared) else im for im in images]
        return self.featurizer.transform_images(pixels) if pixels else None

    def detail_features(self, images: list) -> np.ndarray:
        """The detail view's inputs: mean crop features of each poster."""
        crops = self.crop_features
        prepared = [
            im.crops if isinstance(im, Prepared) else crops.prepare_image(im) for im in images
        ]
        return crops.transform_prepared(prepared)

    def scores(
        self,
        images: list,
        features: np.ndarray | None = None,
        texts: list[str] | None = None,
        detail: np.ndarray | None = None,
    ) -> np.ndarray:
        """Raw scores before calibration: the classifier's, fused with the detail's and the
        words' when the pipeline has those views; ``features``, ``texts`` and ``detail``
        (``detail_features``) are used when already made."""
        if features is None:
            features = self.features(images)
        if features is None:
            return np.zeros((0, len(GENRES)))
        scores = self.classifier.predict_scores(features)
        if self.detail is not None:
            detail = self.detail_features(images) if detail is None else detail
            scores = self.detail.fused_scores(scores, detail)
        if self.read_text:
            texts = self.texts(images) if texts is None else texts
            scores = self.text.fused_scores(scores, texts)
        return scores

    def predict_frame(
        self,
        images: list,
        years: np.ndarray | None = None,
        features: np.ndarray | None = None,
        texts: list[str] | None = None,
        detail: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """``genres`` (asserted) and ``maybe`` (worth a look; empty for a model saved before
        the tiers), most probable first, ``text`` (what OCR read) when the pipeline reads the
        words, and one calibrated probability per genre."""
        if self.read_text and texts is None:
            texts = self.texts(images)
        scores = self.scores(images, features, texts, detail)
        proba, genres, maybe = self.decision.predict_tiers(scores, years)
        out = pd.DataFrame(proba, columns=SCORE_COLUMNS)
        out.insert(0, "genres", ranked_genres(proba, genres))
        out.insert(1, "maybe", ranked_genres(proba, maybe))
        if self.read_text:
            out.insert(2, TEXT_COLUMN, list(texts))
        return out

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        self.featurizer.save(directory / "featurizer")
        self.classifier.save(directory / "classifier")
        rule = json.dumps(self.layer.to_dict(), indent=2)
        (directory / DECISION_RULE_FILE).write_text(rule)
        if self.text is not None:
            self.text.save(directory / TEXT_VIEW_DIR)
        if self.detail is not None:
            self.detail.save(directory / DETAIL_VIEW_DIR)
        (directory / "meta.json").write_text(
            json.dumps({**self.meta, "genres": list(GENRES)}, indent=2)
        )

    @classmethod
    def load(cls, directory: Path) -> PosterPipeline:
        from posterml.classifiers.loading import load_classifier
        from posterml.features.loading import load_featurizer

        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("genres") != list(GENRES):
            raise ValueError(f"{directory}: model was trained on a different genre list")
        return cls(
            load_featurizer(directory / "featurizer"),
            load_classifier(directory / "classifier"),
            DecisionLayer.from_dict(json.loads(_decision_rule(directory).read_text())),
            meta,
            TextView.load(text_dir) if (text_dir := directory / TEXT_VIEW_DIR).exists() else None,
            DetailView.load(crop_dir)
            if (crop_dir := directory / DETAIL_VIEW_DIR).exists()
            else None,
        )


def _decision_rule(directory: Path) -> Path:
    """The saved decision layer; models saved before the name was unified have
    ``decision.json``."""
    path = directory / DECISION_RULE_FILE
    return path if path.exists() else directory / "decision.json"
