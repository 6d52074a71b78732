"""The deployable pipeline: featurizer + classifier + decision layer, saved as one folder.

It is a model-layer object: the runner builds it, ``posterml predict`` and the benchmarks use
it in-process, and serving only wraps it (``posterml.serving.pyfunc``). Every part is saved
in its own safe format (JSON and arrays, a safe-mode Keras file): loading runs no code from
the model's files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from posterml.evaluation.decision import DecisionLayer
from posterml.genres import GENRES, genre_slug
from posterml.names import DECISION_RULE_FILE

# The per-genre probability columns of a prediction, in GENRES order.
SCORE_COLUMNS = [f"score_{genre_slug(g)}" for g in GENRES]


def ranked_genres(proba: np.ndarray, y_pred: np.ndarray) -> list[list[str]]:
    """Each row's predicted genre names, most probable first."""
    order = np.argsort(-np.asarray(proba), axis=1, kind="stable")
    return [
        [GENRES[j] for j in row_order if chosen[j]]
        for row_order, chosen in zip(order, y_pred, strict=True)
    ]


class PosterPipeline:
    """Featurizer + classifier + decision layer, usable in-process (batch prediction, tests)."""

    def __init__(self, featurizer, classifier, layer: DecisionLayer, meta: dict) -> None:
        self.featurizer = featurizer
        self.classifier = classifier
        self.layer = layer
        self.meta = meta

    def features(self, images: list) -> np.ndarray | None:
        """The classifier's inputs for ``images`` (None for none)."""
        return self.featurizer.transform_images(images) if images else None

    def scores(self, images: list, features: np.ndarray | None = None) -> np.ndarray:
        """The classifier's raw scores (before calibration); ``features`` if already made."""
        if features is None:
            features = self.features(images)
        if features is None:
            return np.zeros((0, len(GENRES)))
        return self.classifier.predict_scores(features)

    def predict_frame(
        self, images: list, years: np.ndarray | None = None, features: np.ndarray | None = None
    ) -> pd.DataFrame:
        """``genres`` (asserted) and ``maybe`` (worth a look; empty for a model saved before
        the tiers), most probable first, and one calibrated probability per genre."""
        scores = self.scores(images, features)
        proba, genres, maybe = self.layer.predict_tiers(scores, years)
        out = pd.DataFrame(proba, columns=SCORE_COLUMNS)
        out.insert(0, "genres", ranked_genres(proba, genres))
        out.insert(1, "maybe", ranked_genres(proba, maybe))
        return out

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        self.featurizer.save(directory / "featurizer")
        self.classifier.save(directory / "classifier")
        rule = json.dumps(self.layer.to_dict(), indent=2)
        (directory / DECISION_RULE_FILE).write_text(rule)
        (directory / "meta.json").write_text(
            json.dumps({**self.meta, "genres": list(GENRES)}, indent=2)
        )

    @classmethod
    def load(cls, directory: Path) -> PosterPipeline:
        from posterml.features.loading import load_featurizer
        from posterml.models.loading import load_classifier

        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("genres") != list(GENRES):
            raise ValueError(f"{directory}: model was trained on a different genre list")
        return cls(
            load_featurizer(directory / "featurizer"),
            load_classifier(directory / "classifier"),
            DecisionLayer.from_dict(json.loads(_decision_rule(directory).read_text())),
            meta,
        )


def _decision_rule(directory: Path) -> Path:
    """The saved decision layer; models saved before the name was unified have
    ``decision.json``."""
    path = directory / DECISION_RULE_FILE
    return path if path.exists() else directory / "decision.json"
