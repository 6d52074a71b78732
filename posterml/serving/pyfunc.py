"""The deployable model: base64 image bytes in, genres and per-genre scores out.

A ``PosterGenreModel`` bundles everything between raw bytes and genres: the featurizer
(backbone network or pixel preprocessing, saved inside the model so serving needs no
network and no Keras cache), the classifier, the decision layer (per-genre calibration,
thresholds and decade rates, ``posterml.evaluation.decision``) and the genre list.
Every family logs its model this way, so any parent run can be registered and served.

Input: a DataFrame with a string column ``image`` (base64 JPEG, PNG or WebP) and an optional
integer column ``year`` (release year: the genre rates of its decade are used; empty or 0
means unknown). Output: one row per input with ``genres`` (what the model asserts: names,
most probable first), ``maybe`` (genres worth a look, same format, at most two, never one of
``genres``) and ``score_<genre>`` columns holding calibrated probabilities; a genre is in
``genres`` exactly when its probability clears its threshold, a cut whose out-of-fold
precision cleared the layer's floor (at most five; at least one where one can be asserted).
The model only ever decodes the bytes it is given: it never opens paths or URLs.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    DEADLINE_EXCEEDED,
    INVALID_PARAMETER_VALUE,
    TEMPORARILY_UNAVAILABLE,
)

from posterml.data.images import ImageDecodeError, finish_decode, open_image
from posterml.models.pipeline import SCORE_COLUMNS, PosterPipeline
from posterml.serving.limits import (
    ENV_MAX_IMAGE_PIXELS,
    ENV_MAX_REQUEST_PIXELS,
    ENV_MAX_ROWS,
    FIRST_YEAR,
    LAST_YEAR,
    MAX_BASE64_CHARS,
    Deadline,
    LimitExceeded,
    RequestSlots,
    ServingLimits,
)

# Rows per model call when scoring a request: features of one chunk exist at a time, and the
# deadline is checked between chunks (64 EfficientNet-Lite0 posters: ~0.5 s on 2 cores).
SCORE_CHUNK_ROWS = 64
_SHOWN_ERRORS = 5


class InvalidPosterInput(ValueError):
    """The request is unusable; the message names the rows and the problem."""


def encode_image_file(path: str | Path) -> str:
    """Base64 text of an image file, the form the model takes."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _decode_row(value: object) -> bytes:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise ImageDecodeError("no image (null)")
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


def _raise_row_errors(errors: list[str], n_rows: int) -> None:
    if errors:
        more = (
            f"; ... and {len(errors) - _SHOWN_ERRORS} more" if len(errors) > _SHOWN_ERRORS else ""
        )
        raise InvalidPosterInput(
            f"{len(errors)} of {n_rows} image(s) unusable: "
            + "; ".join(errors[:_SHOWN_ERRORS])
            + more
        )


def decode_images(
    frame: pd.DataFrame,
    limits: ServingLimits | None = None,
    featurizer=None,
    deadline: Deadline | None = None,
) -> list:
    """Decode every row's ``image``; one ``InvalidPosterInput`` lists all bad rows.

    Everything that can be known without decoding is checked first, from the request and
    the image headers: the column, the number of rows, each row's base64, format and pixels,
    and the pixels of the whole request (``limits``, default ``ServingLimits()``). Only then
    are images decoded, one at a time. With a ``featurizer``, each is decoded towards its
    ``image_size`` and only ``featurizer.prepare_image`` of it is kept (a small array, the
    same features): full-size pixels of one image at most exist at any time. Without, the
    full-size RGB images are returned. ``deadline`` is checked between rows.
    """
    limits = limits or ServingLimits()
    if not isinstance(frame, pd.DataFrame) or "image" not in frame.columns:
        raise InvalidPosterInput("input needs a column 'image' holding base64-encoded JPEG/PNG")
    if len(frame) > limits.max_rows:
        raise InvalidPosterInput(
            f"request has {len(frame)} rows, over the limit of {limits.max_rows} images per "
            f"request ({ENV_MAX_ROWS}): send smaller batches"
        )
    # Pixels are counted as they will be decoded: a baseline JPEG at reduced scale.
    min_size = featurizer.image_size if featurizer is not None else None
    opened, errors = [], []
    total_pixels, over_from = 0, None
    for row, value in enumerate(frame["image"].tolist()):
        try:
            image = open_image(
                _decode_row(value),
                max_pixels=limits.max_image_pixels,
                limit_name=ENV_MAX_IMAGE_PIXELS,
                min_size=min_size,
            )
        except ImageDecodeError as exc:
            errors.append(f"row {row}: {exc.reason}")
            image = None
        if image is not None:
            total_pixels += image.width * image.height
            if over_from is None and total_pixels > limits.max_request_pixels:
                over_from = row
        opened.append(image)
    _raise_row_errors(errors, len(frame))
    if over_from is not None:
        raise InvalidPosterInput(
            f"the {len(frame)} images hold {total_pixels:,} pixels, over the limit of "
            f"{limits.max_request_pixels:,} pixels per request ({ENV_MAX_REQUEST_PIXELS}), "
            f"crossed at row {over_from}: send fewer or smaller images"
        )
    images = []
    for row in range(len(opened)):
        if deadline is not None:
            deadline.check(f"decoding row {row}")
        image, opened[row] = opened[row], None  # the full-size pixels go with this row
        try:
            decoded = finish_decode(image, min_size=min_size)
        except ImageDecodeError as exc:
            errors.append(f"row {row}: {exc.reason}")
            continue
        images.append(decoded if featurizer is None else featurizer.prepare_image(decoded))
    _raise_row_errors(errors, len(frame))
    return images


def request_years(frame: pd.DataFrame) -> np.ndarray | None:
    """The optional ``year`` column as floats (NaN where missing), or None without one."""
    if "year" not in frame.columns:
        return None
    years = pd.to_numeric(frame["year"], errors="coerce").to_numpy(dtype=np.float64)
    known = np.isfinite(years) & (years != 0)  # 0: unknown, as the module docstring says
    bad = known & ((years < FIRST_YEAR) | (years > LAST_YEAR))
    if bad.any():
        rows = ", ".join(str(r) for r in np.flatnonzero(bad)[:_SHOWN_ERRORS])
        raise InvalidPosterInput(
            f"row(s) {rows}: year must be a release year ({FIRST_YEAR}-{LAST_YEAR})"
        )
    years[years == 0] = np.nan
    return years


class PosterGenreModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper around a saved ``PosterPipeline`` (artifact ``pipeline``).

    Requests are bounded by ``ServingLimits`` (rows, pixels, time, concurrency), read from
    the environment when the model loads.
    """

    def load_context(self, context) -> None:
        self.pipeline = PosterPipeline.load(Path(context.artifacts["pipeline"]))
        self.limits = ServingLimits.from_env()
        self.slots = RequestSlots(self.limits.max_concurrent)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        deadline = Deadline(self.limits.timeout_s)
        try:
            with self.slots.hold(deadline):
                images = decode_images(model_input, self.limits, self.pipeline.featurizer, deadline)
                years = request_years(model_input)
                frames = []
                for start in range(0, len(images), SCORE_CHUNK_ROWS):
                    deadline.check(f"scoring row {start}")
                    stop = start + SCORE_CHUNK_ROWS
                    chunk_years = None if years is None else years[start:stop]
                    frames.append(self.pipeline.predict_frame(images[start:stop], chunk_years))
        except InvalidPosterInput as exc:
            # INVALID_PARAMETER_VALUE makes the scoring server answer HTTP 400.
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        except LimitExceeded as exc:
            code = DEADLINE_EXCEEDED if exc.status == 504 else TEMPORARILY_UNAVAILABLE
            raise MlflowException(str(exc), error_code=code) from None
        if not frames:
            return self.pipeline.predict_frame([])
        return pd.concat(frames, ignore_index=True)


def _signature():
    """Base64 strings in (plus optional year); genres, maybe and one score per genre out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = Schema([ColSpec("string", "image"), ColSpec("long", "year", required=False)])
    outputs = Schema(
        [ColSpec(Array("string"), "genres"), ColSpec(Array("string"), "maybe")]
        + [ColSpec("double", c) for c in SCORE_COLUMNS]
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


def example_poster() -> str:
    """A small generated poster (a colour gradient with a title band), base64 JPEG: the input
    example every logged model carries. Generated, never a real poster: real artwork is
    copyrighted and has no place in a model's artifacts."""
    import io

    from PIL import Image, ImageDraw

    height, width = 96, 64
    ramp = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    pixels = np.stack(
        [
            np.broadcast_to(ramp, (height, width)),
            np.full((height, width), 60, np.uint8),
            np.broadcast_to(255 - ramp, (height, width)),
        ],
        axis=-1,
    )
    image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    ImageDraw.Draw(image).rectangle((6, 70, 57, 84), fill=(240, 220, 40))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def log_pipeline(pipeline: PosterPipeline, name: str = "model"):
    """Log the pipeline as a pyfunc model on the active run; returns the ``ModelInfo``.

    The input example is a base64 image (``example_poster``), not a decoded array, so the
    UI and the serving docs show what clients actually send.
    """
    example = pd.DataFrame({"image": [example_poster()]})
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
