"""``posterml add``: labelled posters into a dataset, all or nothing, never twice, one writer
at a time, and never a reference poster. Real files, real processes, real signals."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import write_folder, write_image

from posterml.cli import main
from posterml.data.additions import ADDITIONS_LOG, add_posters, undo_batch
from posterml.data.candidates import (
    AddError,
    candidates_from_folder,
    candidates_from_images,
    candidates_from_reviewed_csv,
)
from posterml.data.dataset import load_folder

ROOT = Path(__file__).resolve().parents[1]


def vintage(tmp_path: Path, n: int = 4, start: int = 100) -> Path:
    """A labelled folder of ``n`` distinct posters with ids from ``start``."""
    root = tmp_path / f"vintage{start}"
    rows = []
    for k in range(n):
        image = write_image(root / "images" / f"{start + k}.jpg", seed=start + k)
        rows.append(
            {
                "poster_id": str(start + k),
                "year": 1950 + k % 30,
                "genres": "Western|Drama",
                "image": str(image.relative_to(root)),
            }
        )
    return write_folder(root, rows)


def labels(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "labels.csv", dtype=str)


def test_add_folder_creates_dataset_then_is_idempotent(tmp_path, capsys):
    source, shop = vintage(tmp_path), tmp_path / "shop"
    assert main(["add", str(source), "--to", str(shop)]) == 0
    assert "added 4 poster(s)" in capsys.readouterr().out
    first = load_folder(shop)
    assert sorted(first.frame["poster_id"]) == ["100", "101", "102", "103"]
    assert set(first.frame["image_sha256"]) == set(load_folder(source).frame["image_sha256"])
    assert first.labels[:, 18].sum() == 4  # Western
    # Twice: nothing new, not even a log line.
    log_before = (shop / ADDITIONS_LOG).read_text()
    assert main(["add", str(source), "--to", str(shop)]) == 0
    assert "added 0 poster(s)" in capsys.readouterr().out
    assert load_folder(shop).content_hash == first.content_hash
    assert (shop / ADDITIONS_LOG).read_text() == log_before
    log = pd.read_csv(shop / ADDITIONS_LOG, dtype=str)
    assert list(log["action"]) == ["added"] * 4 and log["batch"].nunique() == 1


def test_same_image_under_another_name_adds_nothing(tmp_path):
    source, shop = vintage(tmp_path), tmp_path / "shop"
    add_posters(candidates_from_folder(source), shop)
    renamed = tmp_path / "copy.jpg"
    shutil.copy(source / "images" / "100.jpg", renamed)
    found, problems = candidates_from_images([renamed], "Western, drama", 1950)  # any case
    assert problems == []
    report = add_posters(found, shop)
    assert report.added == [] and len(report.already) == 1


def test_conflict_is_reported_and_changes_only_with_replace(tmp_path, capsys):
    source, shop = vintage(tmp_path), tmp_path / "shop"
    main(["add", str(source), "--to", str(shop)])
    image = source / "images" / "101.jpg"
    before = labels(shop)
    argv = ["add", str(image), "--genres", "Comedy", "--year", "1951", "--to", str(shop)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "poster 101 has this image" in err and "--replace" in err
    pd.testing.assert_frame_equal(labels(shop), before)
    assert main([*argv, "--replace"]) == 0
    after = labels(shop).set_index("poster_id")
    assert after.loc["101", "genres"] == "Comedy" and after.loc["100", "genres"] == "Western|Drama"
    log = pd.read_csv(shop / ADDITIONS_LOG, dtype=str)
    assert log.iloc[-1]["action"] == "replaced" and log.iloc[-1]["poster_id"] == "101"


def test_one_bad_row_adds_nothing_and_each_problem_names_its_row(tmp_path, capsys):
    shop = vintage(tmp_path / "a", n=2)
    before = (shop / "labels.csv").read_bytes()
    good = write_image(tmp_path / "scan" / "good.jpg", seed=50)
    broken = tmp_path / "scan" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    review = tmp_path / "genres.csv"
    review.write_text(
        "file,genres,year,reviewed\n"
        f"{good},Western,1961,yes\n"
        f"{broken},Drama,1962,yes\n"
        f"{good},Westren,1961,yes\n"
        f"{good},Drama,19x1,yes\n"
        f"{tmp_path / 'gone.jpg'},Drama,1963,yes\n"
        f"{good},Horror,1964,\n"
    )
    assert main(["add", str(review), "--to", str(shop)]) == 1
    err = capsys.readouterr().err
    assert "line 3" in err and "broken.jpg: not an image" in err
    assert "line 4: unknown genre 'Westren' (did you mean 'Western'?)" in err
    assert "line 5: bad year '19x1'" in err
    assert "line 6" in err and "gone.jpg" in err
    assert "line 7" not in err  # not reviewed: never read as a label
    assert (shop / "labels.csv").read_bytes() == before
    assert not (shop / ADDITIONS_LOG).exists()
    assert sorted(p.name for p in (shop / "images").iterdir()) == ["100.jpg", "101.jpg"]


def test_reviewed_rows_of_a_predict_csv_are_added(tmp_path, capsys):
    scans = tmp_path / "scans"
    for k in range(3):
        write_image(scans / f"p{k}.jpg", seed=200 + k)
    review = tmp_path / "genres.csv"
    # As a spreadsheet in a semicolon locale saves it, BOM included; paths relative to it.
    review.write_bytes(
        "\ufefffile;genres;year;reviewed\n"
        "scans/p0.jpg;War, History;1944;yes\n"
        "scans/p1.jpg;Comedy;1966;\n"
        "scans/p2.jpg;Sci-fi;1977;x\n".encode()
    )
    assert main(["add", str(review), "--to", str(tmp_path / "shop")]) == 1
    assert "did you mean 'Science Fiction'" in capsys.readouterr().err
    review.write_text(review.read_text(encoding="utf-8-sig").replace("Sci-fi", "science fiction"))
    assert main(["add", str(review), "--to", str(tmp_path / "shop")]) == 0
    out = capsys.readouterr().out
    assert "added 2 poster(s)" in out and "1 row(s) not marked reviewed" in out
    shop = load_folder(tmp_path / "shop")
    assert sorted(map("|".join, shop.frame["genres"])) == ["Science Fiction", "War|History"]
    assert sorted(shop.frame["year"]) == [1944, 1977]


def test_reference_posters_are_refused(tmp_path, capsys):
    reference = vintage(tmp_path, n=3, start=500)
    copy = tmp_path / "incoming" / "x.jpg"
    copy.parent.mkdir()
    shutil.copy(reference / "images" / "501.jpg", copy)
    argv = ["add", str(copy), "--genres", "Western", "--year", "1951", "--to", str(tmp_path / "s")]
    assert main([*argv, "--reference", str(reference)]) == 1
    assert "poster 501 of the reference set" in capsys.readouterr().err
    assert not (tmp_path / "s" / "labels.csv").exists()


def test_images_need_genres_and_year(tmp_path, capsys):
    image = write_image(tmp_path / "a.jpg")
    assert main(["add", str(image), "--to", str(tmp_path / "s")]) == 1
    assert "without --genres" in capsys.readouterr().err
    assert main(["add", str(image), "--genres", "Drama", "--to", str(tmp_path / "s")]) == 1
    assert "--year: no year" in capsys.readouterr().err


def test_the_same_image_twice_with_other_genres_in_one_input_is_a_conflict(tmp_path):
    a = write_image(tmp_path / "a.jpg", seed=3)
    b = tmp_path / "b.jpg"
    shutil.copy(a, b)
    review = tmp_path / "r.csv"
    review.write_text(f"file,genres,year,reviewed\n{a},Drama,1970,yes\n{b},Crime,1970,yes\n")
    found, _, _ = candidates_from_reviewed_csv(review)
    with pytest.raises(AddError, match="the same image as .* with other genres"):
        add_posters(found, tmp_path / "shop")


def _add_process(source: Path, shop: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "posterml.cli", "add", str(source), "--to", str(shop)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.slow
def test_two_adds_at_once_lose_nothing(tmp_path):
    first, second = vintage(tmp_path, n=30, start=1000), vintage(tmp_path, n=30, start=2000)
    shop = tmp_path / "shop"
    processes = [_add_process(s, shop) for s in (first, second, first)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    frame = load_folder(shop).frame
    assert len(frame) == 60 and frame["image_sha256"].is_unique
    log = pd.read_csv(shop / ADDITIONS_LOG, dtype=str)
    assert len(log) == 60 and log["batch"].nunique() == 2


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_add_leaves_the_dataset_as_it_was_or_fully_added(tmp_path, signum):
    shop = vintage(tmp_path / "shop-src", n=2, start=1)
    before = (shop / "labels.csv").read_bytes()
    source = vintage(tmp_path, n=400, start=3000)
    from helpers import interrupt_when

    images = shop / "images"
    start = len(list(images.iterdir()))
    code, err = interrupt_when(
        [sys.executable, "-m", "posterml.cli", "add", str(source), "--to", str(shop)],
        {**os.environ, "PYTHONPATH": str(ROOT)},
        ROOT,
        lambda: len(list(images.iterdir())) > start + 5,  # copying has begun
        signum,
        "posterml add",
    )
    after = (shop / "labels.csv").read_bytes()
    names = [p.name for p in images.iterdir()]
    if after == before:  # stopped before the commit: nothing left behind
        assert code == 128 + signum and err.strip().endswith(
            "interrupted" if signum == 2 else "SIGTERM"
        )
        assert len(names) == start and not (shop / ADDITIONS_LOG).exists()
    else:  # the commit had begun: all of it landed
        assert len(load_folder(shop)) == 402 and len(names) == 402
        assert len(pd.read_csv(shop / ADDITIONS_LOG)) == 400
    assert not [n for n in os.listdir(shop) + names if n.endswith(".tmp")]


def test_add_log_names_the_source_rows(tmp_path):
    source, shop = vintage(tmp_path, n=2), tmp_path / "shop"
    add_posters(candidates_from_folder(source), shop)
    with open(shop / ADDITIONS_LOG, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["poster_id"] for r in rows] == ["100", "101"]
    assert all("labels.csv poster_id=10" in r["source"] and r["added_at"] for r in rows)


def test_undo_takes_one_addition_back(tmp_path):
    shop = vintage(tmp_path / "a", n=2, start=1)
    before = load_folder(shop)
    images_before = sorted(p.name for p in (shop / "images").iterdir())
    extra = vintage(tmp_path, n=3, start=300)
    relabel, _ = candidates_from_images([shop / "images" / "1.jpg"], "Horror", 1999)
    added = add_posters(candidates_from_folder(extra), shop)
    replaced = add_posters(relabel, shop, replace=True)
    assert load_folder(shop).frame.set_index("poster_id").loc["1", "genres"] == ["Horror"]

    assert undo_batch(shop, replaced.batch) == ["1"]
    assert undo_batch(shop, added.batch) == ["300", "301", "302"]
    after = load_folder(shop)
    assert after.content_hash == before.content_hash
    assert sorted(p.name for p in (shop / "images").iterdir()) == images_before
    with pytest.raises(AddError, match="already undone"):
        undo_batch(shop, added.batch)
    log = pd.read_csv(shop / ADDITIONS_LOG, dtype=str)
    assert (log["action"] == "undone").sum() == 4


def test_an_empty_dataset_is_a_target_like_a_missing_one(tmp_path, capsys):
    """A labels.csv with only its header (a new shop, or its only addition undone) takes
    posters from `add` and the review page; only training refuses it."""
    from posterml.data.dataset import DatasetError
    from posterml.review.queue import ReviewQueue

    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "labels.csv").write_text("poster_id,title,year,genres,image\n")
    assert ReviewQueue(tmp_path, [], shop).saved == {}  # what `posterml review --to` opens
    with pytest.raises(DatasetError, match="no poster rows"):
        load_folder(shop)
    source = vintage(tmp_path, n=2)
    assert main(["add", str(source), "--to", str(shop)]) == 0, capsys.readouterr().err
    assert sorted(load_folder(shop).frame["poster_id"]) == ["100", "101"]
    (batch,) = pd.read_csv(shop / ADDITIONS_LOG, dtype=str)["batch"].unique()
    assert undo_batch(shop, batch) == ["100", "101"]  # header only again
    assert len(load_folder(shop, allow_empty=True).frame) == 0
    assert main(["add", str(source), "--to", str(shop)]) == 0, capsys.readouterr().err
    assert len(load_folder(shop).frame) == 2
