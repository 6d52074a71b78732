"""The deployable model: base64 image bytes in, genres and per-genre scores out.

A ``PosterGenreModel`` bundles everything between raw bytes and genres: the featurizer
(backbone network or pixel preprocessing, saved inside the model so serving needs no
network and no Keras cache), the classifier, the decision layer (per-genre calibration,
thresholds and decade rates, ``posterml.evaluation.decision``) and the genre list.
Every family logs its model this way, so any parent run can be registered and served.

Input: a DataFrame with a string column ``image`` (base64 JPEG or PNG) and an optional
integer column ``year`` (release year: the genre rates of its decade are used; empty or 0
means unknown). Output: one row per input with ``genres`` (names, most probable first) and
``score_<genre>`` columns holding calibrated probabilities; a genre is in ``genres`` exactly
when its probability clears its threshold (at most five, at least one).
The model only ever decodes the bytes it is given: it never opens paths or URLs.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from posterml.data.images import ImageDecodeError, decode_image
from posterml.evaluation.decision import DecisionLayer
from posterml.genres import GENRES, snake

SCORE_COLUMNS = [f"score_{snake(g)}" for g in GENRES]
MAX_BASE64_CHARS = 30_000_000  # ~22 MB of image bytes per poster is already absurd
_SHOWN_ERRORS = 5


class InvalidPosterInput(ValueError):
    """The request is unusable; the message names the rows and the problem."""


def encode_image_file(path: str | Path) -> str:
    """Base64 text of an image file, the form the model takes."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _decode_row(value: object) -> bytes:
    if not isinstance(value, str):
        raise ImageDecodeError(f"expected a base64 string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ImageDecodeError("empty string (no image)")
    if len(text) > MAX_BASE64_CHARS:
        raise ImageDecodeError(f"image payload too large ({len(text):,} base64 characters)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageDecodeError("not valid base64") from None


def decode_images(frame: pd.DataFrame) -> list:
    """Decode every row's ``image``; one ``InvalidPosterInput`` lists all bad rows."""
    if not isinstance(frame, pd.DataFrame) or "image" not in frame.columns:
        raise InvalidPosterInput("input needs a column 'image' holding base64-encoded JPEG/PNG")
    images, errors = [], []
    for row, value in enumerate(frame["image"].tolist()):
        try:
            images.append(decode_image(_decode_row(value)))
        except ImageDecodeError as exc:
            errors.append(f"row {row}: {exc.reason}")
    if errors:
        more = (
            f"; ... and {len(errors) - _SHOWN_ERRORS} more" if len(errors) > _SHOWN_ERRORS else ""
        )
        raise InvalidPosterInput(
            f"{len(errors)} of {len(frame)} image(s) unusable: "
            + "; ".join(errors[:_SHOWN_ERRORS])
            + more
        )
    return images


def ranked_genres(proba: np.ndarray, y_pred: np.ndarray) -> list[list[str]]:
    """Each row's predicted genre names, most probable first."""
    order = np.argsort(-np.asarray(proba), axis=1, kind="stable")
    return [
        [GENRES[j] for j in row_order if chosen[j]]
        for row_order, chosen in zip(order, y_pred, strict=True)
    ]


def request_years(frame: pd.DataFrame) -> np.ndarray | None:
    """The optional ``year`` column as floats (NaN where missing), or None without one."""
    if "year" not in frame.columns:
        return None
    years = pd.to_numeric(frame["year"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isfinite(years) & ((years < 1870) | (years > 2100))
    if bad.any():
        rows = ", ".join(str(r) for r in np.flatnonzero(bad)[:_SHOWN_ERRORS])
        raise InvalidPosterInput(f"row(s) {rows}: year must be a release year (1870-2100)")
    years[years == 0] = np.nan
    return years


class PosterPipeline:
    """Featurizer + classifier + decision layer, usable in-process (batch prediction, tests)."""

    def __init__(self, featurizer, classifier, layer: DecisionLayer, meta: dict) -> None:
        self.featurizer = featurizer
        self.classifier = classifier
        self.layer = layer
        self.meta = meta

    def scores(self, images: list) -> np.ndarray:
        """The classifier's raw scores (before calibration)."""
        if not images:
            return np.zeros((0, len(GENRES)))
        return self.classifier.predict_scores(self.featurizer.transform_images(images))

    def predict_frame(self, images: list, years: np.ndarray | None = None) -> pd.DataFrame:
        """``genres`` (most probable first) and one calibrated probability per genre."""
        scores = self.scores(images)
        proba = self.layer.predict_proba(scores, years)
        y_pred = self.layer.decide(proba, self.layer.thresholds_for(len(proba), years))
        out = pd.DataFrame(proba, columns=SCORE_COLUMNS)
        out.insert(0, "genres", ranked_genres(proba, y_pred))
        return out

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        self.featurizer.save(directory / "featurizer")
        self.classifier.save(directory / "classifier")
        (directory / "decision.json").write_text(json.dumps(self.layer.to_dict(), indent=2))
        (directory / "meta.json").write_text(
            json.dumps({**self.meta, "genres": list(GENRES)}, indent=2)
        )

    @classmethod
    def load(cls, directory: Path) -> PosterPipeline:
        from posterml.features.featurizers import load_featurizer
        from posterml.models.base import load_classifier

        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("genres") != list(GENRES):
            raise ValueError(f"{directory}: model was trained on a different genre list")
        return cls(
            load_featurizer(directory / "featurizer"),
            load_classifier(directory / "classifier"),
            DecisionLayer.from_dict(json.loads((directory / "decision.json").read_text())),
            meta,
        )


class PosterGenreModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper around a saved ``PosterPipeline`` (artifact ``pipeline``)."""

    def load_context(self, context) -> None:
        self.pipeline = PosterPipeline.load(Path(context.artifacts["pipeline"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        try:
            images = decode_images(model_input)
            years = request_years(model_input)
        except InvalidPosterInput as exc:
            # INVALID_PARAMETER_VALUE makes the scoring server answer HTTP 400.
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        return self.pipeline.predict_frame(images, years)


def _signature():
    """Base64 strings in (plus optional year); genres and one score per genre out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = Schema([ColSpec("string", "image"), ColSpec("long", "year", required=False)])
    outputs = Schema(
        [ColSpec(Array("string"), "genres")] + [ColSpec("double", c) for c in SCORE_COLUMNS]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def runtime_requirements() -> list[str]:
    """Pinned requirements for the logged model (skips MLflow's slow import-sniffing)."""
    from importlib.metadata import version

    names = ["mlflow", "tensorflow-cpu", "keras", "scikit-learn", "numpy", "pandas", "pillow"]
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except Exception:  # not installed under that name: leave it unpinned
            pins.append(name)
    return pins


def log_pipeline(pipeline: PosterPipeline, example_image: str | Path, name: str = "model"):
    """Log the pipeline as a pyfunc model on the active run; returns the ``ModelInfo``.

    The input example is a real base64 image, not a decoded array, so the UI and the
    serving docs show what clients actually send.
    """
    example = pd.DataFrame({"image": [encode_image_file(example_image)]})
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "pipeline"
        pipeline.save(directory)
        with warnings.catch_warnings():  # schema hints about int columns: not ours to fix
            warnings.simplefilter("ignore", UserWarning)
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=str(Path(__file__).with_name("model_code.py")),
                artifacts={"pipeline": str(directory)},
                signature=_signature(),
                input_example=example,
                pip_requirements=runtime_requirements(),
                code_paths=[str(Path(__file__).resolve().parents[1])],
            )


def load_pipeline(model_uri: str) -> PosterPipeline:
    """The in-process pipeline of a logged model (for batch prediction without a server).

    Every part is read into memory on load, so the downloaded copy is removed afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="posterml-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp))
        return PosterPipeline.load(next(local.rglob("meta.json")).parent)
