"""``posterml predict``: batch prediction into a csv, bad files skipped and listed, never fatal."""

from __future__ import annotations

import os
import signal
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bad_inputs import BAD_IMAGES, ODD_GOOD_IMAGES, b64, bad_image, expected_words, poster_jpeg
from helpers import interrupt_when, write_image

from posterml.cli import main
from posterml.genres import GENRES
from posterml.serving.predict import collect_files, predict_files, skipped_path
from posterml.serving.pyfunc import SCORE_COLUMNS, decode_images, load_pipeline

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def poster_folder(tmp_path):
    """3 good images (one PNG, one upper-case .JPG in a subfolder), a truncated JPEG, a text
    file named .jpg and a file that is not an image suffix at all (ignored)."""
    folder = tmp_path / "incoming"
    good = [
        write_image(folder / "a.jpg", seed=1),
        write_image(folder / "b.png", seed=2),
        write_image(folder / "sub" / "c.JPG", seed=3),
    ]
    data = write_image(tmp_path / "whole.jpg", seed=4, size=(200, 300)).read_bytes()
    (folder / "broken.jpg").write_bytes(data[: len(data) // 3])
    (folder / "notes.jpg").write_text("this is not an image\n")
    (folder / "readme.txt").write_text("ignored\n")
    return folder, good


def test_collect_files_scans_folders_sorted_and_keeps_explicit_files(poster_folder, tmp_path):
    folder, good = poster_folder
    extra = tmp_path / "missing.jpg"
    files = collect_files([folder, good[0], extra])
    assert files == sorted([*good, folder / "broken.jpg", folder / "notes.jpg"]) + [extra]


def test_cli_predict_writes_good_rows_and_lists_skipped(
    model_store, poster_folder, tmp_path, capsys
):
    folder, good = poster_folder
    out = tmp_path / "results" / "genres.csv"
    missing = tmp_path / "nowhere.jpg"
    code = main(
        [
            "predict",
            str(folder),
            str(missing),
            "--model",
            model_store.model_uri,
            "--out",
            str(out),
            "--batch-size",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ["file", "genres", *SCORE_COLUMNS]
    assert table["file"].tolist() == [str(p) for p in sorted(good)]
    for genres in table["genres"]:
        assert genres and set(genres.split("|")) <= set(GENRES)
    assert ((table[SCORE_COLUMNS] >= 0) & (table[SCORE_COLUMNS] <= 1)).all().all()

    skipped = pd.read_csv(skipped_path(out))
    assert skipped_path(out).name == "genres.skipped.csv"
    reasons = dict(zip(skipped["file"], skipped["reason"], strict=True))
    assert set(reasons) == {str(folder / "broken.jpg"), str(folder / "notes.jpg"), str(missing)}
    assert "truncated" in reasons[str(folder / "broken.jpg")]
    assert "not an image" in reasons[str(folder / "notes.jpg")]
    assert "cannot read" in reasons[str(missing)]
    printed = capsys.readouterr()
    assert "broken.jpg" in printed.err and "3 unreadable" in printed.out
    assert not list(out.parent.glob("*.tmp"))  # the atomic write left nothing behind


def test_predictions_equal_the_in_process_pipeline(model_store, poster_folder, tmp_path):
    folder, good = poster_folder
    out = tmp_path / "genres.csv"
    stale = skipped_path(out)
    stale.write_text("file,reason\nold.jpg,old\n")
    report = predict_files(good, model_store.model_uri, out, batch_size=32, progress=False)
    assert (report.n_files, report.n_predicted, report.skipped) == (3, 3, [])
    assert report.skipped_out is None and not stale.exists()  # no stale skipped list
    from posterml.data.images import load_image

    expected = load_pipeline(model_store.model_uri).predict_frame([load_image(p) for p in good])
    table = pd.read_csv(out, keep_default_na=False)
    assert table["genres"].tolist() == ["|".join(g) for g in expected["genres"]]
    np.testing.assert_allclose(table[SCORE_COLUMNS].to_numpy(), expected[SCORE_COLUMNS], atol=1e-6)


def test_cli_predict_fails_cleanly_when_nothing_is_readable(model_store, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    out = tmp_path / "genres.csv"
    code = main(
        ["predict", str(bad), "--model", model_store.model_uri, "--out", str(out), "--no-progress"]
    )
    assert code == 1
    assert pd.read_csv(out).empty and len(pd.read_csv(skipped_path(out))) == 1


def test_cli_predict_reports_an_unknown_model(model_store, poster_folder, tmp_path, capsys):
    folder, _ = poster_folder
    out = tmp_path / "genres.csv"
    code = main(
        [
            "predict",
            str(folder),
            "--model",
            "models:/no-such-model@champion",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 2 and not out.exists()
    assert "no-such-model" in capsys.readouterr().err


def test_output_files_follow_the_umask(model_store, poster_folder, tmp_path):
    folder, _ = poster_folder
    out = tmp_path / "genres.csv"
    old = os.umask(0o022)
    try:
        predict_files([folder], model_store.model_uri, out, progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert stat.S_IMODE(skipped_path(out).stat().st_mode) == 0o644


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_killed_predict_leaves_no_temp_file(tiny_model, tmp_path, signum):
    """A real ``posterml predict`` process, signalled once its temp csv exists, removes it."""
    image = write_image(tmp_path / "one.jpg", seed=1)
    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(1500):  # hard links: many inputs, one image's worth of disk
        os.link(image, folder / f"p{k:04d}.jpg")
    out = tmp_path / "results" / "genres.csv"
    env = os.environ | {
        "MLFLOW_TRACKING_URI": tiny_model.tracking_uri,
        "MLFLOW_REGISTRY_URI": tiny_model.tracking_uri,
        "PYTHONPATH": str(REPO),
    }
    command = [sys.executable, "-m", "posterml.cli", "predict", str(folder)]
    command += ["--model", tiny_model.model_uri, "--out", str(out), "--batch-size", "1"]

    def temp_files() -> list[Path]:
        return list(out.parent.glob(".*.tmp")) if out.parent.is_dir() else []

    returncode, err = interrupt_when(
        [*command, "--no-progress"], env, tmp_path, temp_files, signum, "predict writing"
    )
    left = sorted(p.name for p in out.parent.iterdir())
    assert not left, (left, err[-2000:])  # no temp file, no output, no skipped list
    assert returncode == 128 + signum, err[-2000:]  # 143/130, as a shell says
    assert "Traceback" not in err


SUFFIXES = {"animated-gif": ".gif", "tiff": ".tiff", "bmp": ".bmp", "svg": ".svg", "eps": ".eps"}


def _suffix(data: bytes) -> str:
    return ".png" if data.startswith(b"\x89PNG") else ".webp" if data[8:12] == b"WEBP" else ".jpg"


def test_cli_predict_skips_and_lists_the_bad_corpus(model_store, tmp_path, capsys):
    """tests/bad_inputs.py through ``posterml predict``: bad files skipped with their
    reason, unusual but valid posters predicted."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    bad, good = {}, []
    for case in BAD_IMAGES:
        path = folder / f"{case}{SUFFIXES.get(case, '.png' if 'png' in case else '.jpg')}"
        path.write_bytes(bad_image(case))
        bad[str(path)] = case
    for case, build in ODD_GOOD_IMAGES.items():
        data = build()
        good.append(folder / f"{case}{_suffix(data)}")
        good[-1].write_bytes(data)
    out = tmp_path / "genres.csv"
    files = [str(p) for p in [*good, *map(Path, bad)]]
    args = ["--model", model_store.model_uri, "--out", str(out), "--no-progress"]
    code = main(["predict", *files, *args])
    assert code == 0
    assert pd.read_csv(out)["file"].tolist() == [str(p) for p in good]
    skipped = pd.read_csv(skipped_path(out))
    reasons = dict(zip(skipped["file"], skipped["reason"], strict=True))
    assert set(reasons) == set(bad)
    for path, case in bad.items():
        assert any(word in reasons[path] for word in expected_words(case)), (case, reasons[path])
    assert f"{len(bad)} unreadable" in capsys.readouterr().out


def test_cli_predict_decodes_like_the_server(model_store, tmp_path):
    """A large poster is decoded towards the model's input size, as the server does."""
    path = tmp_path / "large.jpg"
    path.write_bytes(poster_jpeg(seed=3, width=2000, height=3000))
    out = tmp_path / "genres.csv"
    predict_files([path], model_store.model_uri, out, progress=False)
    pipeline = load_pipeline(model_store.model_uri)
    served = pipeline.predict_frame(
        decode_images(
            pd.DataFrame({"image": [b64(path.read_bytes())]}), featurizer=pipeline.featurizer
        )
    )
    table = pd.read_csv(out, keep_default_na=False)
    np.testing.assert_allclose(table[SCORE_COLUMNS].to_numpy(), served[SCORE_COLUMNS], atol=1e-6)
