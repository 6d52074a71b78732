"""The views beside the picture: Tesseract on real generated posters, the text classifier, the
detail crops, the fusion, and a model that reads the words and the detail end to end (a run,
the in-process pipeline, a live scoring server).

Tesseract is a Debian package that ``.ci/run`` installs like PostgreSQL: these tests never
skip, a machine without it fails them with the install line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from model_fixture import ScoringServer, tracking_store
from PIL import Image, ImageDraw, ImageFont

from posterml.classifiers.fusion import DetailView, LateFusion
from posterml.classifiers.loading import load_classifier
from posterml.classifiers.text import TfidfLogisticClassifier
from posterml.features import ocr
from posterml.features.ocr import OcrReader, OcrUnavailable, clean_text
from posterml.genres import GENRES

WORDS = ("HAUNTED", "MIDNIGHT", "COWBOY", "GALAXY", "LOVERS", "BATTLE")


def titled_poster(title: str, size: tuple[int, int] = (200, 300), tagline: str = "") -> Image.Image:
    """A generated 2:3 poster: dark, the title in large light letters, a yellow tagline."""
    width, height = size
    image = Image.new("RGB", (width, height), (40, 40, 40))
    draw = ImageDraw.Draw(image)
    draw.text((12, height // 6), title, font=ImageFont.load_default(size=width // 7), fill="white")
    if tagline:
        font = ImageFont.load_default(size=width // 11)
        draw.text((12, height * 3 // 4), tagline, font=font, fill=(250, 210, 0))
    return image


# --------------------------------------------------------------------------- OCR
def test_ocr_reads_the_title_of_a_generated_poster() -> None:
    text = OcrReader().read(titled_poster("HAUNTED", tagline="a true story"))
    assert "HAUNTED" in text
    assert "true story" in text


def test_ocr_is_bounded_in_pixels_text_and_time(caplog: pytest.LogCaptureFixture) -> None:
    reader = OcrReader(height=120, max_chars=60)
    # A very wide image is cut to three times the page height, whatever its size.
    page = reader.page(Image.new("RGB", (20_000, 100), "white"))
    assert page.shape == (120, 360)
    assert reader.page(page).shape == page.shape  # a page is its own page
    # A poster of many words: what comes back is cut at a word boundary.
    many = " ".join(["WORD"] * 400)
    assert len(clean_text(many, 60)) <= 60 and clean_text(many, 60).endswith("WORD")
    assert clean_text("a\x00b\n\n  c\td", 100) == "ab c d"
    # The engine is stopped at its timeout: the text is empty and the reason logged.
    with caplog.at_level(logging.WARNING, logger="posterml.features.ocr"):
        assert OcrReader(timeout_s=0.001).read(titled_poster("HAUNTED")) == ""
    assert "ran past" in caplog.text


def test_a_missing_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ocr.engine_version.cache_clear()
    monkeypatch.setenv("PATH", "/nonexistent")
    try:
        with pytest.raises(OcrUnavailable, match="apt-get install tesseract-ocr"):
            OcrReader().check()
    finally:
        monkeypatch.undo()
        ocr.engine_version.cache_clear()
    assert OcrReader().namespace.startswith("tesseract-")


def test_read_paths_skips_bad_files_and_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = []
    for k, word in enumerate(WORDS[:2]):
        paths.append(tmp_path / f"{k}.png")
        titled_poster(word).save(paths[-1])
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    paths.append(tmp_path / "bad.jpg")
    reader = OcrReader()
    texts, failures = reader.read_paths([str(p) for p in paths], cache_root=tmp_path / "c")
    assert "HAUNTED" in texts[0] and "MIDNIGHT" in texts[1] and texts[2] is None
    assert [Path(p).name for p, _ in failures] == ["bad.jpg"]

    def never(self, image):  # the second pass must not reach the engine
        raise AssertionError("OCR ran on a cached poster")

    monkeypatch.setattr(OcrReader, "read", never)
    again, failures_again = reader.read_paths(
        [str(p) for p in paths[:2]], cache_root=tmp_path / "c"
    )
    assert again == texts[:2] and not failures_again


# --------------------------------------------------------------------------- text model
def worded_texts(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Texts where word k marks genre k (and noise words), with some empty texts."""
    rng = np.random.default_rng(seed)
    Y = np.zeros((n, len(GENRES)), np.uint8)
    texts = []
    for i in range(n):
        genres = rng.choice(len(WORDS), size=rng.integers(1, 3), replace=False)
        Y[i, genres] = 1
        noise = " ".join(rng.choice(["the", "and", "starring", "xqz"], 3))
        texts.append("" if i % 10 == 0 else " ".join([WORDS[g].lower() for g in genres] + [noise]))
    return np.array(texts, dtype=str), Y


def test_text_classifier_learns_words_and_round_trips_as_data(tmp_path: Path) -> None:
    texts, Y = worded_texts(300)
    model = TfidfLogisticClassifier().fit(texts[:240], Y[:240])
    scores = model.predict_scores(texts[240:])
    held = Y[240:]
    for g in range(len(WORDS)):
        assert scores[held[:, g] == 1, g].mean() > scores[held[:, g] == 0, g].mean() + 0.3
    model.save(tmp_path / "m")
    assert not any(tmp_path.glob("m/*.pkl"))
    np.testing.assert_allclose(
        load_classifier(tmp_path / "m").predict_scores(texts), model.predict_scores(texts)
    )
    # A saved vocabulary that is not text is refused with the array's name.
    arrays = dict(np.load(tmp_path / "m" / "arrays.npz"))
    arrays["words_terms"] = np.arange(len(arrays["words_terms"]))
    np.savez(tmp_path / "m" / "arrays.npz", **arrays)
    with pytest.raises(ValueError, match="words: terms must be strings"):
        load_classifier(tmp_path / "m")


def test_text_classifier_fits_when_no_poster_has_words() -> None:
    Y = worded_texts(40)[1]
    model = TfidfLogisticClassifier().fit(np.array([""] * 40), Y)
    scores = model.predict_scores(np.array(["", "anything"]))
    assert scores.shape == (2, len(GENRES)) and np.isfinite(scores).all()


def test_fusion_listens_to_the_view_that_knows() -> None:
    rng = np.random.default_rng(1)
    Y = (rng.random((600, len(GENRES))) < 0.3).astype(np.uint8)
    knows = np.clip(0.5 + (Y - 0.5) * 0.6 + rng.normal(0, 0.1, Y.shape), 0.01, 0.99)
    noise = rng.uniform(0.01, 0.99, Y.shape)
    fusion = LateFusion().fit([noise, knows], Y)
    assert (np.abs(fusion.weights_[:, 1]) > 5 * np.abs(fusion.weights_[:, 0])).all()
    fused = fusion.predict_scores([noise, knows])
    assert ((fused > 0.5) == Y.astype(bool)).mean() > 0.95
    again = LateFusion.from_arrays(fusion.to_arrays())
    np.testing.assert_allclose(again.predict_scores([noise, knows]), fused)


# --------------------------------------------------------------------------- detail
def test_square_crops_cover_the_long_side_without_squashing() -> None:
    from posterml.features.crops import square_crops

    upright = square_crops(Image.new("RGB", (200, 300)))
    assert [c.size for c in upright] == [(200, 200)] * 3
    wide = square_crops(Image.new("RGB", (301, 100)))
    assert [c.size for c in wide] == [(100, 100)] * 3
    assert len(square_crops(Image.new("RGB", (64, 64)))) == 1  # a square is its own crop
    # Top, middle and bottom: each crop sees its own third of a striped poster.
    striped = Image.new("RGB", (200, 600), "red")
    striped.paste((0, 0, 255), (0, 400, 200, 600))
    colours = [c.getpixel((100, 100)) for c in square_crops(striped)]
    assert colours[0] == (255, 0, 0) and colours[-1] == (0, 0, 255)


def test_crop_features_are_one_mean_vector_per_poster_and_cached(tmp_path: Path) -> None:
    from posterml.features.backbone import BackboneFeaturizer
    from posterml.features.crops import CropFeatures

    featurizer = BackboneFeaturizer(
        "efficientnet_lite0", batch_size=4, cache_root=tmp_path, progress=False
    )
    crops = CropFeatures(featurizer)
    posters = [titled_poster(w) for w in WORDS[:3]]
    prepared = [crops.prepare_image(p) for p in posters]
    assert prepared[0].shape == (3, 224, 224, 3) and prepared[0].dtype == np.uint8
    vectors = crops.transform_prepared(prepared)
    assert vectors.shape == (3, featurizer.feature_dim)
    one = featurizer.transform_images(list(prepared[1])).mean(axis=0)
    np.testing.assert_allclose(vectors[1], one, rtol=1e-4, atol=1e-5)
    # From files: the same vectors, the bad file reported, the second pass from the cache.
    paths = []
    for k, poster in enumerate(posters):
        poster.save(tmp_path / f"p{k}.png")
        paths.append(str(tmp_path / f"p{k}.png"))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    result = crops.transform_paths([paths[0], str(tmp_path / "bad.jpg"), *paths[1:]])
    assert result.ok.tolist() == [True, False, True, True] and len(result.failures) == 1
    np.testing.assert_allclose(result.features, vectors, rtol=1e-4, atol=1e-5)
    again = crops.transform_paths(paths)
    assert again.n_cached == 3 and again.n_computed == 0


def test_a_detail_view_round_trips_as_data_and_refuses_other_crops(tmp_path: Path) -> None:
    from posterml.classifiers.classic import ClassicClassifier

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(80, 6)), (rng.random((80, len(GENRES))) < 0.3).astype(np.uint8)
    Y[:, 0] = X[:, 0] > 0
    classifier = ClassicClassifier("logreg").fit(X, Y)
    image_scores = rng.random(Y.shape)
    view = DetailView(classifier, LateFusion().fit([image_scores, classifier.predict_scores(X)], Y))
    view.save(tmp_path / "detail")
    again = DetailView.load(tmp_path / "detail")
    np.testing.assert_allclose(
        again.fused_scores(image_scores, X), view.fused_scores(image_scores, X)
    )
    (tmp_path / "detail" / "crops.json").write_text('{"crops": 5, "version": 1}')
    with pytest.raises(ValueError, match="5"):
        DetailView.load(tmp_path / "detail")


def test_views_are_spelt_one_way_and_detail_needs_backbone_features() -> None:
    from posterml.modeling.cli import experiment_config
    from posterml.modeling.families import get_family
    from posterml.modeling.inputs import build_features, load_data

    assert experiment_config("resnet_svm", views="detail+image+ocr").views == "image+ocr+detail"
    with pytest.raises(ValueError, match="views 'ocr'"):
        experiment_config("resnet_svm", views="ocr")
    with pytest.raises(ValueError, match="faces"):
        experiment_config("resnet_svm", views="image+faces")
    config = experiment_config("pca_classic", max_posters=40, views="image+detail")
    dataset, splits = load_data(config)
    with pytest.raises(ValueError, match="detail view needs pooled"):
        build_features(get_family("pca_classic", config.options), dataset, splits, config.views)


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def ocr_model(tmp_path_factory: pytest.TempPathFactory):
    """A recipe run with every view (image+ocr+detail) on a slice of the synthetic set."""
    import mlflow

    from posterml.modeling.cli import experiment_config
    from posterml.modeling.run import run_experiment

    root = tmp_path_factory.mktemp("ocr-model")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with tracking_store(uri, cwd=root):
        run_id = run_experiment(
            experiment_config(
                "resnet_svm",
                data="synthetic",
                backbone="efficientnet_lite0",
                class_weight="balanced",
                n_trials=1,
                max_posters=120,
                views="image+ocr+detail",
                storage=f"sqlite:///{root}/optuna.db",
                experiment="reads-the-words",  # this store's own, whatever another test set
            )
        )
        run = mlflow.get_run(run_id)
    return uri, run, root


@pytest.mark.slow
def test_a_run_that_reads_the_words_serves_them(ocr_model, monkeypatch: pytest.MonkeyPatch) -> None:
    from posterml.serving.pyfunc import encode_image_file, load_pipeline
    from posterml.serving.rows import decode_images

    uri, run, root = ocr_model
    assert run.data.params["views"] == "image+ocr+detail"
    assert run.data.params["ocr_engine"] == "tesseract"
    poster = root / "haunted.png"
    titled_poster("HAUNTED", tagline="the true story").save(poster)
    frame = pd.DataFrame({"image": [encode_image_file(poster)]})
    with tracking_store(uri):
        pipeline = load_pipeline(run.data.tags["model_uri"])
        prepared = decode_images(frame, preparer=pipeline)
        assert prepared[0].crops.shape == (3, 224, 224, 3)  # the detail view's input
        answer = pipeline.predict_frame(prepared)
        assert "HAUNTED" in answer["text"][0]
        # The picture is the whole poster fused with its detail, before the words.
        whole = pipeline.classifier.predict_scores(pipeline.features(prepared))
        picture = pipeline.detail.fused_scores(whole, pipeline.detail_features(prepared))
        fused = pipeline.text.fused_scores(picture, answer["text"].tolist())
        np.testing.assert_allclose(pipeline.scores(prepared), fused)
        assert answer.columns[:3].tolist() == ["genres", "maybe", "text"]
        # The switch: image-only answers, decided by the picture's own layer.
        monkeypatch.setenv("POSTERML_OCR", "off")
        image_only = load_pipeline(run.data.tags["model_uri"])
        assert image_only.decision is image_only.text.image_layer
        unread = decode_images(frame, preparer=image_only)
        assert unread[0].page is None  # no page kept for OCR that will not run
        assert "text" not in image_only.predict_frame(unread)
        # Without the words the answer is still the picture with its detail.
        np.testing.assert_allclose(image_only.scores(unread), picture, rtol=1e-5)
        # Without the engine, loading a model that reads the words fails; it says why.
        monkeypatch.delenv("POSTERML_OCR")
        ocr.engine_version.cache_clear()
        monkeypatch.setenv("PATH", "/nonexistent")
        try:
            with pytest.raises(OcrUnavailable, match="tesseract"):
                load_pipeline(run.data.tags["model_uri"])
        finally:
            monkeypatch.setenv("PATH", os.environ["PATH"])
            monkeypatch.undo()
            ocr.engine_version.cache_clear()


@pytest.mark.slow
def test_the_scoring_server_answers_what_ocr_read(ocr_model, tmp_path: Path) -> None:
    from posterml.serving.pyfunc import encode_image_file

    uri, run, _ = ocr_model
    titled_poster("GALAXY").save(tmp_path / "p.png")
    server = ScoringServer(run.data.tags["model_uri"], uri, tmp_path)
    try:
        server.wait_ready()
        payload = {"dataframe_records": [{"image": encode_image_file(tmp_path / "p.png")}]}
        response = requests.post(f"{server.url}/invocations", json=payload, timeout=120)
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    answer = response.json()["predictions"][0]
    assert "GALAXY" in answer["text"] and set(answer["genres"]) <= set(GENRES)


@pytest.mark.slow
def test_predict_writes_what_ocr_read_and_can_skip_it(ocr_model, tmp_path: Path) -> None:
    from posterml.cli import main

    uri, run, _ = ocr_model
    folder = tmp_path / "scans"
    folder.mkdir()
    titled_poster("COWBOY").save(folder / "a.png")
    titled_poster("LOVERS").save(folder / "b.png")
    model = ["--model", run.data.tags["model_uri"], "--no-progress"]
    with tracking_store(uri):
        assert main(["predict", str(folder), "--out", str(tmp_path / "g.csv"), *model]) == 0
        fast = ["predict", str(folder), "--out", str(tmp_path / "f.csv"), "--no-ocr", *model]
        assert main(fast) == 0
    read = pd.read_csv(tmp_path / "g.csv", encoding="utf-8-sig", keep_default_na=False)
    assert ["COWBOY" in t for t in read["text"]] == [True, False]
    assert "LOVERS" in read["text"][1]
    skipped = pd.read_csv(tmp_path / "f.csv", encoding="utf-8-sig", keep_default_na=False)
    assert skipped["text"].tolist() == ["", ""] and skipped["genres"].str.len().gt(0).all()
