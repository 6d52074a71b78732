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
A model that reads the words (``ocr`` in its ``views``) also answers ``text``, what OCR read;
it needs the ``tesseract`` binary, checked when the model loads, unless ``POSTERML_OCR=off``
switches the words off (answers from the picture, with its detail when the model has it,
decided by the picture's own thresholds).
The model only ever decodes the bytes it is given: it never opens paths or URLs.
"""

from __future__ import annotations

import base64
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
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

from posterml.classifiers.pipeline import SCORE_COLUMNS, PosterPipeline
from posterml.names import TEXT_COLUMN
from posterml.serving.limits import Deadline, LimitExceeded, RequestSlots, ServingLimits
from posterml.serving.rows import InvalidPosterInput, decode_images, request_years
from posterml.serving.threads import ENV_MODEL_THREADS, ServingThreads

# Set to off to serve a model that reads the words without OCR (cheaper: the picture alone).
ENV_OCR = "POSTERML_OCR"
OFF_VALUES = ("0", "off", "false", "no")


def ocr_switched_off() -> bool:
    """Whether ``POSTERML_OCR`` asks for answers without the words."""
    return os.environ.get(ENV_OCR, "").strip().lower() in OFF_VALUES


def apply_ocr_switch(pipeline: PosterPipeline, read_text: bool | None = None) -> PosterPipeline:
    """Switch the pipeline's words view on or off (``None``: as ``POSTERML_OCR`` says) and,
    when on, check now that the OCR engine exists: a clear error at load, never an
    answer that pretends to have read the poster."""
    if pipeline.text is None:
        return pipeline
    pipeline.read_text = (not ocr_switched_off()) if read_text is None else read_text
    if pipeline.read_text:
        pipeline.text.reader.check()
    return pipeline


# Rows per model call when scoring a request: features of one chunk exist at a time, and the
# deadline is checked between chunks (64 EfficientNet-Lite0 posters: ~0.5 s on 2 cores).
SCORE_CHUNK_ROWS = 64
# A chunk is split over the cores (``ServingThreads.parts``) only into parts of at least this
# many posters: smaller ones cost more to hand out than they gain.
MIN_PART_ROWS = 4


def encode_image_file(path: str | Path) -> str:
    """Base64 text of an image file, the form the model takes."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


class PosterGenreModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper around a saved ``PosterPipeline`` (artifact ``pipeline``).

    Requests are bounded by ``ServingLimits`` (rows, pixels, time, concurrency), read from
    the environment when the model loads. Threads: one per TensorFlow op and BLAS call, a
    request's posters split over the cores (``posterml.serving.threads``). The featurizer's
    graph is traced when the model loads, not by the first request.
    """

    # Until load_context: the libraries' threads, no splitting (a model built in a test).
    threads = ServingThreads(per_op=None)
    parts: ThreadPoolExecutor | None = None

    def load_context(self, context) -> None:
        self.threads = ServingThreads.from_env()
        self.limits = ServingLimits.from_env()
        self.threads.apply()  # before the pipeline's load starts TensorFlow
        self.pipeline = apply_ocr_switch(PosterPipeline.load(Path(context.artifacts["pipeline"])))
        self.slots = RequestSlots(self.limits.max_concurrent)
        self.parts = (
            ThreadPoolExecutor(self.threads.parts, thread_name_prefix="posterml-features")
            if self.threads.parts > 1
            else None
        )
        warm_up(self.pipeline)

    def features(self, images: list) -> np.ndarray | None:
        """The pipeline's features of ``images``, in parts run at once on the cores."""
        return self._in_parts(self.pipeline.features, images)

    def detail_features(self, images: list) -> np.ndarray | None:
        """The detail view's inputs (three crops a poster), in parts likewise; ``None`` for a
        pipeline without a detail view."""
        if getattr(self.pipeline, "detail", None) is None:
            return None
        return self._in_parts(self.pipeline.detail_features, images)

    def _in_parts(self, compute, images: list) -> np.ndarray | None:
        """``compute(images)``, split into parts of at least ``MIN_PART_ROWS`` run on the
        feature threads, rows back in order."""
        n_parts = min(self.threads.parts, len(images) // MIN_PART_ROWS)
        if self.parts is None or n_parts < 2:
            return compute(images)
        bounds = np.linspace(0, len(images), n_parts + 1).astype(int)
        parts = [images[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return np.concatenate(list(self.parts.map(compute, parts)))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        deadline = Deadline(self.limits.timeout_s)
        try:
            with self.slots.hold(deadline):
                images = decode_images(model_input, self.limits, self.pipeline, deadline)
                years = request_years(model_input)
                frames = []
                for start in range(0, len(images), SCORE_CHUNK_ROWS):
                    deadline.check(f"scoring row {start}")
                    stop = start + SCORE_CHUNK_ROWS
                    chunk = images[start:stop]
                    chunk_years = None if years is None else years[start:stop]
                    features = self.features(chunk)
                    detail = self.detail_features(chunk)
                    frames.append(
                        self.pipeline.predict_frame(chunk, chunk_years, features, detail=detail)
                    )
        except InvalidPosterInput as exc:
            # INVALID_PARAMETER_VALUE makes the scoring server answer HTTP 400.
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        except LimitExceeded as exc:
            code = DEADLINE_EXCEEDED if exc.status == 504 else TEMPORARILY_UNAVAILABLE
            raise MlflowException(str(exc), error_code=code) from None
        if not frames:
            return self.pipeline.predict_frame([])
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def warm_up(pipeline: PosterPipeline) -> None:
    """Run the featurizer once on a blank poster: its graph is traced (seconds for a
    backbone) while the model loads, not while the first client waits."""
    height, width = pipeline.featurizer.image_size
    pipeline.features([np.zeros((height, width, 3), dtype=np.uint8)])


def _signature(reads_text: bool = False):
    """Base64 strings in (plus optional year); genres, maybe, what OCR read (for a model that
    reads the words; absent when switched off) and one score per genre out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = Schema([ColSpec("string", "image"), ColSpec("long", "year", required=False)])
    text = [ColSpec("string", TEXT_COLUMN, required=False)] if reads_text else []
    outputs = Schema(
        [ColSpec(Array("string"), "genres"), ColSpec(Array("string"), "maybe")]
        + text
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
    from posterml.tracking import environment

    example = pd.DataFrame({"image": [example_poster()]})
    # MLflow loads the model here to check the example: in this (training) process, which
    # keeps the libraries' threads (the serving threads are process-wide and would stay).
    with environment({ENV_MODEL_THREADS: "0"}), tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "pipeline"
        pipeline.save(directory)
        with warnings.catch_warnings():  # schema hints about int columns: not ours to fix
            warnings.simplefilter("ignore", UserWarning)
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=str(Path(__file__).with_name("model_code.py")),
                artifacts={"pipeline": str(directory)},
                signature=_signature(pipeline.text is not None),
                input_example=example,
                pip_requirements=runtime_requirements(),
                code_paths=[str(Path(__file__).resolve().parents[1])],
            )


def load_pipeline(model_uri: str, read_text: bool | None = None) -> PosterPipeline:
    """The in-process pipeline of a logged model (for batch prediction without a server);
    ``read_text`` switches its words view on or off (``apply_ocr_switch``).

    Every part is read into memory on load, so the downloaded copy is removed afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="posterml-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp))
        pipeline = PosterPipeline.load(next(local.rglob("meta.json")).parent)
    return apply_ocr_switch(pipeline, read_text)
