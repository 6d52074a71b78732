"""``posterml predict``: batch prediction into a csv, bad files skipped and listed, never fatal."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bad_inputs import BAD_IMAGES, ODD_GOOD_IMAGES, b64, bad_image, expected_words, poster_jpeg
from helpers import interrupt_when, write_image
from model_fixture import tracking_store

from posterml.batch.local import collect_files, predict_files, skipped_path
from posterml.cli import main
from posterml.genres import GENRES
from posterml.serving.pyfunc import SCORE_COLUMNS, load_pipeline
from posterml.serving.rows import decode_images

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
    (folder / "gone.jpg").symlink_to(tmp_path / "deleted-poster.jpg")  # reported, not lost
    (folder / "loop").symlink_to(folder)  # a link back up: listed once, no endless walk
    (folder / "album.jpg").mkdir()  # a folder with an image's name is not an image
    files = collect_files([folder, good[0], extra])
    expected = [*good, folder / "broken.jpg", folder / "notes.jpg", folder / "gone.jpg"]
    assert files == sorted(expected) + [extra]


def test_cli_predict_refuses_nothing_to_predict_before_loading_anything(tmp_path, capsys):
    """An empty folder or ``--out`` naming a folder: one line, status 2, no file written,
    before the model is looked for (this model URI does not exist)."""
    empty = tmp_path / "incoming"
    empty.mkdir()
    (empty / "notes.txt").write_text("no posters here\n")
    args = ["predict", str(empty), "--model", "models:/nobody@nothing", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "genres.csv")]) == 2
    assert f"no .jpg/.jpeg/.png/.webp file in {empty}" in capsys.readouterr().err
    write_image(empty / "poster.jpg", seed=1)
    assert main([*args, "--out", str(empty)]) == 2
    assert f"--out {empty} is a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["incoming", "notes.txt", "poster.jpg"]


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
            "--format",
            "machine",
            "--no-progress",
        ]
    )
    assert code == 0
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == [
        "file",
        "genres",
        "maybe",
        "year",
        "review_priority",
        "text",
        *SCORE_COLUMNS,
    ]
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
    report = predict_files(
        good, model_store.model_uri, out, batch_size=32, output_format="machine", progress=False
    )
    assert (report.n_files, report.n_predicted, report.skipped) == (3, 3, [])
    assert report.skipped_out is None and not stale.exists()  # no stale skipped list
    from posterml.data.images import load_image

    expected = load_pipeline(model_store.model_uri).predict_frame([load_image(p) for p in good])
    table = pd.read_csv(out, keep_default_na=False)
    assert table["genres"].tolist() == ["|".join(g) for g in expected["genres"]]
    assert table["maybe"].tolist() == ["|".join(g) for g in expected["maybe"]]
    # Full precision: the csv reads back the very floats the pipeline returned.
    np.testing.assert_array_equal(table[SCORE_COLUMNS].to_numpy(), expected[SCORE_COLUMNS])


def test_cli_predict_fails_cleanly_when_nothing_is_readable(model_store, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    out = tmp_path / "genres.csv"
    args = ["predict", str(bad), "--model", model_store.model_uri, "--out", str(out)]
    code = main([*args, "--format", "machine", "--no-progress"])
    assert code == 1
    assert pd.read_csv(out).empty and len(pd.read_csv(skipped_path(out))) == 1
    assert main([*args, "--no-progress"]) == 1  # the spreadsheet still shows why
    assert pd.read_csv(out, encoding="utf-8-sig")["error"].tolist() == [
        "not an image (unrecognised format)"
    ]


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
    err = capsys.readouterr().err
    assert "no-such-model" in err and "MLFLOW_TRACKING_URI" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_predict_reports_an_unknown_alias(model_store, poster_folder, tmp_path, capsys):
    folder, _ = poster_folder
    out = tmp_path / "genres.csv"
    model = "models:/poster-genre-classifier@retired"
    assert main(["predict", str(folder), "--model", model, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "alias retired not found" in err and "MLFLOW_TRACKING_URI" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_cli_predict_reports_an_unreachable_tracking_server(poster_folder, tmp_path, capsys):
    """A tracking server that drops every connection is reported after a few tries (MLflow
    alone makes 8 over ~4 min): the connections it was sent are counted."""
    import socket
    import threading

    folder, _ = poster_folder
    out = tmp_path / "genres.csv"
    tries = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"

        def drop_every_connection() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:  # the listener was closed: the test is over
                    return
                tries.append(1)
                connection.close()

        threading.Thread(target=drop_every_connection, daemon=True).start()
        with tracking_store(uri):
            code = main(["predict", str(folder), "--out", str(out), "--no-progress"])
    assert code == 2 and not out.exists()
    assert 1 <= len(tries) <= 3, f"{len(tries)} connections"  # 1 + the 2 retries allowed
    err = capsys.readouterr().err
    assert f"MLFLOW_TRACKING_URI={uri}" in err and "unreachable" in err
    assert len(err.strip().splitlines()) == 1


def _predict_elsewhere(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``posterml predict`` as a dealer runs it: another folder, no MLflow variables set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "posterml.cli", "predict", *args, "--no-progress"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_predict_from_another_folder_says_what_to_set_and_creates_no_store(poster_folder, tmp_path):
    folder, _ = poster_folder
    shop = tmp_path / "shop"
    shop.mkdir()
    done = _predict_elsewhere(shop, str(folder))
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback
    assert "MLFLOW_TRACKING_URI" in done.stderr and str(shop / "mlflow.db") in done.stderr
    assert list(shop.iterdir()) == []  # no empty mlflow.db, no genres.csv


def test_predict_from_another_folder_with_a_model_folder(model_store, poster_folder, tmp_path):
    """A plain local model needs no tracking store, and none is created."""
    import mlflow

    folder, good = poster_folder
    model_dir = Path(mlflow.artifacts.download_artifacts(model_store.model_uri, dst_path=tmp_path))
    shop = tmp_path / "shop"
    shop.mkdir()
    done = _predict_elsewhere(shop, str(folder), "--model", str(model_dir))
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(shop / "genres.csv", encoding="utf-8-sig", keep_default_na=False)
    assert (table["error"] == "").sum() == len(good)
    assert sorted(p.name for p in shop.iterdir()) == ["genres.csv", "genres.skipped.csv"]


def test_runs_uri_still_works(model_store, poster_folder, tmp_path):
    import mlflow

    folder, good = poster_folder
    run = mlflow.get_run(model_store.run_id)
    name = mlflow.get_logged_model(run.outputs.model_outputs[0].model_id).name
    out = tmp_path / "genres.csv"
    report = predict_files([folder], f"runs:/{model_store.run_id}/{name}", out, progress=False)
    assert report.n_predicted == len(good)


def test_spreadsheet_lists_every_file_with_names_and_percentages(
    model_store, poster_folder, tmp_path
):
    """The dealer's csv: every input in input order, genre names most probable first, one
    column per genre in whole percent, and the reason for each unreadable file."""
    from posterml.data.images import load_image

    folder, good = poster_folder
    out = tmp_path / "genres.csv"
    args = ["predict", str(folder), "--model", model_store.model_uri, "--out", str(out)]
    assert main([*args, "--batch-size", "2", "--no-progress"]) == 0
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel then reads UTF-8
    table = pd.read_csv(out, encoding="utf-8-sig", keep_default_na=False, dtype=str)
    assert list(table.columns) == [
        "file",
        "genres",
        "maybe",
        "year",
        "reviewed",
        "review_priority",
        "error",
        "text",
        *GENRES,
    ]
    assert table["file"].tolist() == [str(p) for p in collect_files([folder])]

    readable = table[table["error"] == ""].set_index("file")
    expected = load_pipeline(model_store.model_uri).predict_frame([load_image(p) for p in good])
    assert readable.index.tolist() == [str(p) for p in good]
    assert readable["genres"].tolist() == [", ".join(g) for g in expected["genres"]]
    assert readable["maybe"].tolist() == [", ".join(g) for g in expected["maybe"]]
    percent = readable[list(GENRES)]
    assert percent.map(lambda cell: cell.endswith("%")).all().all()
    shown = percent.map(lambda cell: int(cell.rstrip("%"))).to_numpy()
    np.testing.assert_allclose(shown, 100 * expected[SCORE_COLUMNS].to_numpy(), atol=0.5 + 1e-9)

    failed = table[table["error"] != ""].set_index("file")
    assert failed.index.tolist() == [str(folder / "broken.jpg"), str(folder / "notes.jpg")]
    assert "truncated" in failed.loc[str(folder / "broken.jpg"), "error"]
    assert (failed[["genres", "maybe", *GENRES]] == "").all().all()
    assert len(pd.read_csv(skipped_path(out))) == 2  # listed on their own too, as before


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
    assert "Downloading artifacts" not in err  # --no-progress: MLflow's bar is hidden too


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
    code = main(["predict", *files, *args, "--format", "machine"])
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
    predict_files([path], model_store.model_uri, out, output_format="machine", progress=False)
    pipeline = load_pipeline(model_store.model_uri)
    served = pipeline.predict_frame(
        decode_images(
            pd.DataFrame({"image": [b64(path.read_bytes())]}), preparer=pipeline.featurizer
        )
    )
    table = pd.read_csv(out, keep_default_na=False)
    np.testing.assert_allclose(table[SCORE_COLUMNS].to_numpy(), served[SCORE_COLUMNS], atol=1e-6)


def test_years_reach_the_model_as_the_server_takes_them(model_store, poster_folder, tmp_path):
    """A csv input with years gives the server's answers for the same images and years; a
    --years csv beside a folder does the same; a bad year is not used and is listed."""
    import base64

    import mlflow

    folder, good = poster_folder
    listing = tmp_path / "posters.csv"
    listing.write_text(
        "file,year\n"
        + "".join(
            f"{p.relative_to(tmp_path)},{y}\n" for p, y in zip(good, (1948, "", 2011), strict=True)
        )
    )
    out = tmp_path / "genres.csv"
    args = ["--model", model_store.model_uri, "--format", "machine", "--no-progress"]
    assert main(["predict", str(listing), "--out", str(out), *args]) == 0
    table = pd.read_csv(out, keep_default_na=False, dtype={"year": str})
    assert table["year"].tolist() == ["1948", "", "2011"]
    served = mlflow.pyfunc.load_model(model_store.model_uri).predict(
        pd.DataFrame(
            {
                "image": [base64.b64encode(p.read_bytes()).decode() for p in good],
                "year": [1948, 0, 2011],  # 0: unknown, as the server reads it
            }
        )
    )
    np.testing.assert_allclose(table[SCORE_COLUMNS].to_numpy(), served[SCORE_COLUMNS], atol=1e-9)
    assert table["genres"].str.split("|").tolist() == [list(g) for g in served["genres"]]

    years = tmp_path / "years.csv"
    years.write_text(f"file,year\n{good[0].relative_to(tmp_path)},1948\n")
    again = tmp_path / "again.csv"
    assert main(["predict", str(good[0]), "--years", str(years), "--out", str(again), *args]) == 0
    first = pd.read_csv(again, keep_default_na=False)
    np.testing.assert_allclose(
        first[SCORE_COLUMNS].to_numpy()[0], table[SCORE_COLUMNS].to_numpy()[0], atol=1e-6
    )

    # A year that is no release year is not used, and is listed with its row.
    years.write_text(f"file,year\n{good[0]},1948\n{good[1]},19x\n")
    assert main(["predict", str(folder), "--years", str(years), "--out", str(again), *args]) == 0
    used = pd.read_csv(again, keep_default_na=False, dtype={"year": str})
    assert dict(zip(used["file"], used["year"], strict=True)) == {
        str(good[0]): "1948",
        str(good[1]): "",
        str(good[2]): "",
    }
    listed = pd.read_csv(tmp_path / "again.year-problems.csv", dtype=str).values.tolist()
    assert [str(good[1]), "years.csv line 3: year '19x' is not a number"] in listed


def test_review_queue_then_add_closes_the_loop(model_store, poster_folder, tmp_path, capsys):
    """predict --review N ranks the posters to label; the dealer marks checked rows, and
    posterml add takes exactly those into his dataset."""
    folder, good = poster_folder
    more = [write_image(folder / f"m{k}.jpg", seed=40 + k) for k in range(4)]
    out = tmp_path / "genres.csv"
    argv = ["predict", str(folder), "--out", str(out), "--model", model_store.model_uri]
    assert main([*argv, "--review", "3", "--no-progress"]) == 0
    assert "the 3 to label first" in capsys.readouterr().out
    table = pd.read_csv(out, encoding="utf-8-sig", keep_default_na=False, dtype=str)
    readable = table[table["error"] == ""]
    priority = readable["review_priority"].astype(float)
    assert priority.between(0, 1).all() and priority.is_unique
    queue = pd.read_csv(out.with_name("genres.review.csv"), encoding="utf-8-sig", dtype=str)
    assert (
        queue["file"].tolist()
        == readable.sort_values("review_priority", key=lambda p: -p.astype(float))["file"].tolist()[
            :3
        ]
    )
    assert set(readable["file"]) == {str(p) for p in [*good, *more]}

    # The dealer fixes two rows, gives their years, and marks them reviewed.
    table.loc[table["file"] == str(good[0]), ["genres", "year", "reviewed"]] = [
        "Western, War",
        "1962",
        "yes",
    ]
    table.loc[table["file"] == str(more[0]), ["year", "reviewed"]] = ["1975", "x"]
    table.to_csv(out, index=False, encoding="utf-8-sig")
    assert main(["add", str(out), "--to", str(tmp_path / "shop")]) == 0
    assert "added 2 poster(s)" in capsys.readouterr().out
    from posterml.data.dataset import load_folder

    shop = load_folder(tmp_path / "shop").frame.set_index("year")
    assert shop.loc[1962, "genres"] == ["Western", "War"]
    assert shop.loc[1975, "genres"] == table.loc[table["file"] == str(more[0]), "genres"].iloc[
        0
    ].split(", ")
