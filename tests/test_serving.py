"""The real scoring server (``mlflow models serve``) answers like the in-process pipeline.

A tiny pixel-PCA model is trained and registered once, then served from the registry exactly
as in production (``models:/poster-genre-classifier@champion``, local env). Good requests in
both pandas JSON forms must equal ``load_pipeline(...).predict_frame``; every bad payload must
get a 400 naming the problem, and the server must keep answering afterwards.
"""

from __future__ import annotations

import base64
import io
import shutil
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from bad_inputs import (
    BAD_IMAGES,
    LARGE_SIDE,
    ODD_GOOD_IMAGES,
    as_camera_stores,
    b64,
    bad_image,
    batch_with_one_bad_row,
    encode,
    expected_words,
    fifty_mb_value,
    one_bit_png,
    png8,
    png16_twin,
    poster_jpeg,
)
from model_fixture import ScoringServer, tracking_store
from PIL import Image

from posterml.genres import GENRES, genre_slug
from posterml.serving.pyfunc import SCORE_COLUMNS, encode_image_file
from posterml.serving.rows import decode_images

SHARED_POSTERS = Path(__file__).resolve().parents[1].parent / "shared" / "posters"
N_IMAGES = 4
REQUEST_TIMEOUT_S = 60

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def image_files() -> list[Path]:
    """A few real posters from ../shared/posters, else synthetic posters (never a skip)."""
    labels = SHARED_POSTERS / "labels.csv"
    if labels.is_file():
        table = pd.read_csv(labels, dtype=str)
        paths = [SHARED_POSTERS / p for p in table["image"].iloc[::997][:N_IMAGES]]
        if all(p.is_file() for p in paths):
            return paths
    from posterml.data.sources import load_dataset

    return [Path(p) for p in load_dataset("synthetic").image_paths[:N_IMAGES]]


@pytest.fixture(scope="module")
def images_b64(image_files: list[Path]) -> list[str]:
    return [encode_image_file(p) for p in image_files]


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory) -> ScoringServer:
    """The champion served by ``mlflow models serve`` on a free 127.0.0.1 port."""
    running = ScoringServer(
        tiny_model.model_uri, tiny_model.tracking_uri, tmp_path_factory.mktemp("server")
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def pipeline(tiny_model):
    """The same registered model, loaded in-process."""
    from posterml.serving.pyfunc import load_pipeline

    with tracking_store(tiny_model.tracking_uri):
        return load_pipeline(tiny_model.model_uri)


# --------------------------------------------------------------------------- helpers
def invoke(server: ScoringServer, payload: dict) -> requests.Response:
    return requests.post(f"{server.url}/invocations", json=payload, timeout=REQUEST_TIMEOUT_S)


def split_payload(values: list, columns: tuple[str, ...] = ("image",), years=None) -> dict:
    rows = (
        [[v] for v in values]
        if years is None
        else [[v, y] for v, y in zip(values, years, strict=True)]
    )
    return {"dataframe_split": {"columns": list(columns), "data": rows}}


def records_payload(values: list[str], years=None) -> dict:
    rows = [{"image": v} for v in values]
    if years is not None:
        for row, year in zip(rows, years, strict=True):
            row["year"] = year
    return {"dataframe_records": rows}


def assert_matches_pipeline(
    predictions: list[dict], images_b64: list[str], pipeline, years=None
) -> None:
    """One well-formed answer per image, equal to the in-process prediction (decoded as the
    server and training do: towards the featurizer's input size)."""
    assert len(predictions) == len(images_b64)
    frame = pd.DataFrame({"image": images_b64})
    expected = pipeline.predict_frame(
        decode_images(frame, preparer=pipeline.featurizer),
        None if years is None else np.asarray(years, dtype=float),
    )
    for answer, (_, want) in zip(predictions, expected.iterrows(), strict=True):
        assert isinstance(answer["genres"], list) and answer["genres"], answer
        assert set(answer["genres"]) <= set(GENRES)
        assert answer["genres"] == list(want["genres"])
        # The maybe tier arrives beside genres: the same names, never an asserted genre.
        assert isinstance(answer["maybe"], list) and answer["maybe"] == list(want["maybe"])
        assert not set(answer["maybe"]) & set(answer["genres"])
        scores = np.array([answer[c] for c in SCORE_COLUMNS], dtype=float)
        assert ((scores >= 0) & (scores <= 1)).all()
        np.testing.assert_allclose(
            scores, want[SCORE_COLUMNS].to_numpy(dtype=float), rtol=0, atol=1e-6
        )


def assert_still_serving(server: ScoringServer, image_b64: str) -> None:
    response = invoke(server, records_payload([image_b64]))
    assert response.status_code == 200, response.text[:2000]
    assert len(response.json()["predictions"]) == 1


def scores_of(predictions: list[dict]) -> np.ndarray:
    return np.array([[p[c] for c in SCORE_COLUMNS] for p in predictions], dtype=float)


def model_message(response: requests.Response) -> str:
    """The model's own message (MLflow puts a repr of the input before it)."""
    return response.json()["message"].rpartition("Error: ")[2]


# --------------------------------------------------------------------------- good requests
@pytest.mark.parametrize("form", ["split", "records", "split+year", "records+year"])
def test_server_answers_like_in_process_pipeline(server, pipeline, images_b64, form):
    years = [1995, 1962, 2010, 1987][: len(images_b64)] if form.endswith("+year") else None
    if form.startswith("split"):
        columns = ("image", "year") if years else ("image",)
        payload = split_payload(images_b64, columns, years)
    else:
        payload = records_payload(images_b64, years)
    response = invoke(server, payload)
    assert response.status_code == 200, response.text[:2000]
    assert_matches_pipeline(response.json()["predictions"], images_b64, pipeline, years)


def test_served_genres_come_most_probable_first(server, images_b64):
    response = invoke(server, records_payload(images_b64))
    for answer in response.json()["predictions"]:
        for tier, most in (("genres", 5), ("maybe", 2)):
            probabilities = [answer[f"score_{genre_slug(g)}"] for g in answer[tier]]
            assert probabilities == sorted(probabilities, reverse=True)
            assert len(answer[tier]) <= most
        assert answer["genres"]


# --------------------------------------------------------------------------- bad requests
def _huge_png() -> str:
    """A 20000x20000 PNG of a few KB (one solid bit plane): must be refused from its header."""
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, "PNG")
    assert len(buffer.getvalue()) < 200_000
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _truncated_jpeg(path: Path) -> str:
    data = path.read_bytes()
    return base64.b64encode(data[: len(data) // 2]).decode("ascii")


BAD_VALUES = {
    "not-base64": (lambda files: "@@@not base64!!", "not valid base64"),
    "base64-of-text": (
        lambda files: base64.b64encode(b"Casablanca, 1942, a love story").decode(),
        "not an image",
    ),
    "truncated-jpeg": (lambda files: _truncated_jpeg(files[0]), "truncated"),
    "empty-string": (lambda files: "", "empty"),
    "server-side-path": (lambda files: str(files[0].resolve()), "not valid base64"),
    "file-url": (lambda files: files[0].resolve().as_uri(), "not valid base64"),
    # Pillow's own bomb check or posterml's size limit, whichever reads the header first.
    "huge-20000x20000": (lambda files: _huge_png(), ("400000000 pixels", "20000x20000")),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_image_gets_400_naming_the_problem(server, image_files, images_b64, case):
    make, expected = BAD_VALUES[case]
    response = invoke(server, split_payload([images_b64[0], make(image_files)]))
    assert response.status_code == 400, response.text[:2000]
    message = response.json()["message"]
    expected = (expected,) if isinstance(expected, str) else expected
    assert "row 1" in message and any(e in message for e in expected), message[-1000:]
    assert_still_serving(server, images_b64[0])


def test_missing_image_column_gets_400(server, images_b64):
    response = invoke(server, split_payload([1995, 2001], columns=("year",)))
    assert response.status_code == 400, response.text[:2000]
    assert "image" in response.json()["message"]
    assert_still_serving(server, images_b64[0])


def test_server_never_opens_a_path_even_if_it_is_valid_base64(server, images_b64):
    """A readable image at a path that also parses as base64: decoded as bytes, refused."""
    alphabet = list(string.ascii_letters + string.digits)
    folder = Path("/tmp") / "".join(np.random.default_rng().choice(alphabet, 12))
    path = folder / "poster"  # "/tmp/" + 12 + "/poster": 24 characters, all base64
    folder.mkdir()
    try:
        Image.new("RGB", (60, 90), (200, 30, 30)).save(path, "PNG")
        base64.b64decode(str(path), validate=True)  # really valid base64
        response = invoke(server, split_payload([str(path)]))
    finally:
        shutil.rmtree(folder)
    assert response.status_code == 400, response.text[:2000]
    assert "not an image" in response.json()["message"]
    assert_still_serving(server, images_b64[0])


# --------------------------------------------------------------------------- the corpus
@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_corpus_bad_image_gets_400_naming_row_and_problem(server, images_b64, case):
    """tests/bad_inputs.py: each refused naming its row (from its header where it can be:
    test_limits.py shows nothing is decoded then)."""
    response = invoke(server, split_payload([images_b64[0], b64(bad_image(case))]))
    assert response.status_code == 400, response.text[:2000]
    message = model_message(response)
    assert message.startswith("1 of 2 image(s) unusable: row 1: "), message[:500]
    assert any(word in message for word in expected_words(case)), message[:500]
    assert_still_serving(server, images_b64[0])


def test_odd_but_valid_posters_are_all_scored(server, pipeline):
    """CMYK, alpha, palette, 16-bit, 1-bit, 1x1, WebP, a 2000x3000 JPEG: one 200."""
    values = [b64(build()) for build in ODD_GOOD_IMAGES.values()]
    response = invoke(server, records_payload(values))
    assert response.status_code == 200, model_message(response)[:2000]
    assert_matches_pipeline(response.json()["predictions"], values, pipeline)


def test_a_phone_photo_is_scored_as_the_upright_poster(server, image_files):
    """A photo stored turned with its EXIF orientation gets the upright poster's scores;
    the same turned pixels without the tag (what the model saw before) do not."""
    poster = Image.open(image_files[0]).convert("RGB")
    upright, photo = encode(poster, "PNG"), as_camera_stores(poster, 6, "PNG")
    sideways = encode(poster.transpose(Image.Transpose.ROTATE_90), "PNG")
    response = invoke(server, split_payload([b64(upright), b64(photo), b64(sideways)]))
    assert response.status_code == 200, model_message(response)[:2000]
    scores = scores_of(response.json()["predictions"])
    np.testing.assert_array_equal(scores[1], scores[0])
    assert np.abs(scores[2] - scores[0]).max() > 0.01


def test_16bit_png_gets_the_scores_of_its_8bit_twin(server, image_files):
    poster = Image.open(image_files[0]).convert("RGB")
    rgb, gray = np.asarray(poster), np.asarray(poster.convert("L"))
    values = [b64(png8(gray)), b64(png16_twin(gray)), b64(png8(rgb)), b64(png16_twin(rgb))]
    response = invoke(server, split_payload(values))
    assert response.status_code == 200, model_message(response)[:2000]
    scores = scores_of(response.json()["predictions"])
    # Same pixels; a CNN backbone may differ by float noise (~5e-8) with the batch position.
    np.testing.assert_allclose(scores[1], scores[0], rtol=0, atol=1e-6)  # gray, not white
    np.testing.assert_allclose(scores[3], scores[2], rtol=0, atol=1e-6)


def test_rows_and_pixels_per_request_are_limited_before_decoding(server, images_b64):
    tiny = b64(poster_jpeg(width=8, height=12))
    response = invoke(server, split_payload([tiny] * 513))
    assert response.status_code == 400, response.text[:2000]
    assert "513 rows" in model_message(response) and "POSTERML_MAX_ROWS" in model_message(response)
    # 7 images of 15 Mpx (each under the per-image limit): 105 Mpx > 100 Mpx per request.
    # test_limits.py: refused from the headers, nothing decoded.
    response = invoke(server, split_payload([images_b64[0]] + [b64(one_bit_png(LARGE_SIDE))] * 7))
    assert response.status_code == 400, response.text[:2000]
    message = model_message(response)
    assert "POSTERML_MAX_REQUEST_PIXELS" in message and "crossed at row 7" in message, message
    assert_still_serving(server, images_b64[0])


def test_one_bad_row_in_500_fails_the_batch_naming_it(server, images_b64):
    """Kept behaviour: a batch is all or nothing, and the 400 names the bad row."""
    response = invoke(server, split_payload(batch_with_one_bad_row(500, bad_row=317)))
    assert response.status_code == 400, response.text[:2000]
    message = model_message(response)
    assert message.startswith("1 of 500 image(s) unusable: row 317: corrupt or truncated"), message
    assert_still_serving(server, images_b64[0])


def test_a_50_mb_body_is_refused(server, images_b64):
    response = invoke(server, split_payload([images_b64[0], fifty_mb_value()]))
    assert response.status_code == 400, response.text[-2000:]
    assert "row 1: image payload too large (50,000,000 base64" in model_message(response)
    assert_still_serving(server, images_b64[0])


def test_null_image_and_wrong_or_extra_columns(server, images_b64):
    response = invoke(server, split_payload([images_b64[0], None]))
    assert response.status_code == 400, response.text[:2000]
    assert "row 1" in response.json()["message"] and "null" in response.json()["message"].lower()
    response = invoke(server, {"dataframe_records": [{"img": images_b64[0]}]})
    assert response.status_code == 400 and "image" in response.json()["message"]
    # Extra columns are ignored: the answer is the one without them.
    extra = invoke(server, {"dataframe_records": [{"image": images_b64[0], "title": "Heat"}]})
    plain = invoke(server, records_payload([images_b64[0]]))
    assert extra.status_code == 200, extra.text[:2000]
    assert extra.json()["predictions"] == plain.json()["predictions"]


def test_a_large_request_within_every_limit_is_scored(server, images_b64):
    """6 images of 15 Mpx (90 Mpx, within every limit) get their answer; that they are
    decoded one at a time is checked in process (test_limits.py), the server's memory by
    ``benchmarks.load --bomb``."""
    values = [b64(one_bit_png(LARGE_SIDE))] * 6
    response = invoke(server, split_payload(values))
    assert response.status_code == 200, model_message(response)[:2000]
    assert len(response.json()["predictions"]) == 6
    assert_still_serving(server, images_b64[0])
