"""Serving limits, in process: rows and pixels checked from headers before any decoding,
images kept small, scoring in chunks, a deadline that stops work, a bounded concurrency."""

from __future__ import annotations

import threading
import time
import weakref
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from bad_inputs import (
    BAD_IMAGES,
    LARGE_SIDE,
    b64,
    bad_image,
    expected_words,
    one_bit_png,
    poster_jpeg,
)
from mlflow.exceptions import MlflowException

from posterml.data.images import decode_image
from posterml.features.pixels import PixelFeaturizer
from posterml.genres import GENRES
from posterml.serving import pyfunc, rows
from posterml.serving.limits import (
    Deadline,
    LimitExceeded,
    RequestSlots,
    ServingLimits,
)
from posterml.serving.pyfunc import PosterGenreModel, PosterPipeline
from posterml.serving.rows import InvalidPosterInput, decode_images


def frame(values: list) -> pd.DataFrame:
    return pd.DataFrame({"image": values})


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any pixel is decoded (limits must be checked from headers)."""

    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded although the request is over a limit")

    monkeypatch.setattr(rows, "decode_image", refuse)


# --------------------------------------------------------------------------- configuration
def test_limits_come_from_the_environment_with_defaults() -> None:
    assert ServingLimits.from_env({}) == ServingLimits()
    limits = ServingLimits.from_env(
        {
            "POSTERML_MAX_ROWS": "8",
            "POSTERML_MAX_IMAGE_PIXELS": "1_000_000",
            "POSTERML_MAX_REQUEST_PIXELS": " 5000000 ",
            "POSTERML_MAX_CONCURRENT_REQUESTS": "1",
            "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": "7.5",
        }
    )
    assert limits == ServingLimits(8, 1_000_000, 5_000_000, 1, 7.5)
    for bad in ("0", "-3", "lots", "1.5"):
        with pytest.raises(ValueError, match="POSTERML_MAX_ROWS"):
            ServingLimits.from_env({"POSTERML_MAX_ROWS": bad})


def test_the_model_reads_its_limits_when_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    image_only = SimpleNamespace(  # a pipeline that does not read the words
        text=None, featurizer=PixelFeaturizer((9, 6)), features=lambda images: None
    )
    monkeypatch.setattr(PosterPipeline, "load", classmethod(lambda cls, directory: image_only))
    monkeypatch.setenv("POSTERML_MODEL_THREADS", "0")  # this process keeps its threads
    monkeypatch.setenv("POSTERML_MAX_ROWS", "3")
    monkeypatch.setenv("POSTERML_MAX_CONCURRENT_REQUESTS", "4")
    model = PosterGenreModel()
    model.load_context(SimpleNamespace(artifacts={"pipeline": "unused"}))
    assert model.limits.max_rows == 3 and model.slots.n == 4
    monkeypatch.setenv("POSTERML_MAX_ROWS", "three")
    with pytest.raises(ValueError, match="POSTERML_MAX_ROWS"):
        PosterGenreModel().load_context(SimpleNamespace(artifacts={"pipeline": "unused"}))


# --------------------------------------------------------------------------- limits
def test_too_many_rows_is_refused_before_decoding(no_decoding) -> None:
    with pytest.raises(InvalidPosterInput, match=r"5 rows.*limit of 4.*POSTERML_MAX_ROWS"):
        decode_images(frame([b64(poster_jpeg())] * 5), ServingLimits(max_rows=4))


def test_a_too_large_image_is_refused_naming_its_row(no_decoding) -> None:
    values = [b64(poster_jpeg()), b64(bad_image("pixel-bomb-png"))]
    with pytest.raises(InvalidPosterInput) as err:
        decode_images(frame(values))
    message = str(err.value)
    assert "row 1: image too large: 6324x6324" in message
    assert "POSTERML_MAX_IMAGE_PIXELS" in message and "row 0" not in message


def test_a_request_over_the_pixel_budget_is_refused_naming_the_row(no_decoding) -> None:
    """7 images of 15 Mpx: each allowed, together 105 Mpx > 100 Mpx."""
    values = [b64(poster_jpeg())] + [b64(one_bit_png(LARGE_SIDE))] * 7
    with pytest.raises(InvalidPosterInput) as err:
        decode_images(frame(values))
    message = str(err.value)
    assert "POSTERML_MAX_REQUEST_PIXELS" in message and "crossed at row 7" in message


# Every corpus entry but the truncated JPEG is refused from its header (that one is found
# by decoding it, within the per-image limit).
FROM_THE_HEADER = [name for name in BAD_IMAGES if name != "truncated-jpeg"]


@pytest.mark.parametrize("case", FROM_THE_HEADER)
def test_a_bad_image_is_refused_before_anything_is_decoded(no_decoding, case: str) -> None:
    """What the server's 400 for each corpus entry rests on: no pixel of the request is
    decoded, the good row included (a 6324x6324 bomb costs nothing to refuse)."""
    with pytest.raises(InvalidPosterInput) as err:
        decode_images(frame([b64(poster_jpeg()), b64(bad_image(case))]))
    message = str(err.value)
    assert message.startswith("1 of 2 image(s) unusable: row 1: "), message
    assert any(word in message for word in expected_words(case)), message


def test_a_large_request_holds_one_full_size_image_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """6 images of 15 Mpx (each within the limit): each is decoded, shrunk to the model's
    input and let go before the next is decoded; only the small arrays are kept."""
    alive: list[weakref.ref] = []
    real_decode = rows.decode_image

    def decode_one(*args, **kwargs):
        assert all(ref() is None for ref in alive), "an earlier full-size image is alive"
        image = real_decode(*args, **kwargs)
        alive.append(weakref.ref(image))
        return image

    monkeypatch.setattr(rows, "decode_image", decode_one)
    featurizer = PixelFeaturizer((30, 20))
    prepared = decode_images(frame([b64(one_bit_png(LARGE_SIDE))] * 6), preparer=featurizer)
    assert len(alive) == 6 and all(ref() is None for ref in alive)
    assert [p.shape for p in prepared] == [(30, 20, 3)] * 6


def test_null_and_non_string_rows_are_named() -> None:
    with pytest.raises(InvalidPosterInput) as err:
        decode_images(frame([b64(poster_jpeg()), None, np.nan, 42]))
    message = str(err.value)
    assert "3 of 4" in message and "row 1: no image (null)" in message
    assert "row 2: no image (null)" in message and "row 3: expected a base64 string" in message


def test_with_a_featurizer_only_small_prepared_images_are_kept() -> None:
    """Large posters come back at the featurizer's size, with the training pixels."""
    featurizer = PixelFeaturizer((30, 20))
    data = [poster_jpeg(seed=1, width=2000, height=3000), poster_jpeg(seed=2)]
    prepared = decode_images(frame([b64(d) for d in data]), preparer=featurizer)
    assert [p.shape for p in prepared] == [(30, 20, 3)] * 2
    # The same pixels as the training path (load_image with min_size, then the resize).
    expected = [featurizer.prepare_image(decode_image(d, min_size=(30, 20))) for d in data]
    np.testing.assert_array_equal(np.stack(prepared), np.stack(expected))
    np.testing.assert_array_equal(featurizer.transform_images(prepared), np.stack(expected))


# --------------------------------------------------------------------------- time, slots
def test_an_expired_deadline_stops_decoding() -> None:
    deadline = Deadline(0.0)
    time.sleep(0.01)
    with pytest.raises(LimitExceeded, match="stopped while decoding row 0") as err:
        decode_images(frame([b64(poster_jpeg())]), deadline=deadline)
    assert err.value.status == 504


class SlowPipeline:
    """A pipeline whose scoring takes ``seconds`` per call and counts its rows."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.featurizer = PixelFeaturizer((9, 6))
        self.seconds = seconds
        self.calls: list[int] = []
        self.image_size = self.featurizer.image_size
        self.prepare_image = self.featurizer.prepare_image

    def features(self, images: list) -> None:
        return None  # predict_frame makes them (as PosterPipeline does when given None)

    def predict_frame(self, images: list, years=None, features=None, detail=None) -> pd.DataFrame:
        self.calls.append(len(images))
        time.sleep(self.seconds)
        scores = np.full((len(images), len(GENRES)), 0.5)
        out = pd.DataFrame(scores, columns=pyfunc.SCORE_COLUMNS)
        out.insert(0, "genres", [["Drama"]] * len(images))
        return out


def served(pipeline, limits: ServingLimits) -> PosterGenreModel:
    model = PosterGenreModel()
    model.pipeline, model.limits, model.slots = (
        pipeline,
        limits,
        RequestSlots(limits.max_concurrent),
    )
    return model


def test_requests_are_scored_in_chunks_in_order() -> None:
    pipeline = SlowPipeline()
    n = 2 * pyfunc.SCORE_CHUNK_ROWS + 5
    out = served(pipeline, ServingLimits()).predict(None, frame([b64(poster_jpeg())] * n))
    assert pipeline.calls == [pyfunc.SCORE_CHUNK_ROWS, pyfunc.SCORE_CHUNK_ROWS, 5]
    assert len(out) == n and list(out.index) == list(range(n))


def test_a_timed_out_request_stops_computing() -> None:
    """MLflow answers 504 at its timeout but never cancels the thread: the model stops."""
    pipeline = SlowPipeline(seconds=0.3)
    n = 10 * pyfunc.SCORE_CHUNK_ROWS
    model = served(pipeline, ServingLimits(max_rows=n, timeout_s=0.5))
    with pytest.raises(MlflowException, match="longer than 0.5 s") as err:
        model.predict(None, frame([b64(poster_jpeg())] * n))
    assert err.value.get_http_status_code() == 504
    assert len(pipeline.calls) <= 3  # not the 10 chunks a full request would take


def test_requests_beyond_the_concurrency_limit_wait_then_get_503() -> None:
    slots = RequestSlots(1)
    started, release = threading.Event(), threading.Event()

    def first() -> None:
        with slots.hold(Deadline(10)):
            started.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        started.wait(5)
        begin = time.monotonic()
        with pytest.raises(LimitExceeded, match="server busy") as err:
            with slots.hold(Deadline(0.3)):
                pass
        assert err.value.status == 503 and time.monotonic() - begin >= 0.25
    finally:
        release.set()
        thread.join()
    with slots.hold(Deadline(1)):  # free again
        pass


def test_an_empty_request_gives_an_empty_answer() -> None:
    out = served(SlowPipeline(), ServingLimits()).predict(None, frame([]))
    assert len(out) == 0
