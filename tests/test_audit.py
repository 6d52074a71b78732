"""``posterml audit``: posters with deliberately wrong labels are found, the csv opens on the
review page, and unreadable images are skipped with a message."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bad_inputs import bad_image

from posterml.data.dataset import load_folder
from posterml.data.synthetic import render_poster
from posterml.evaluation.audit import (
    AuditError,
    AuditSettings,
    audit_dataset,
    audit_frame,
    find_suspects,
    proposed_genres,
    write_audit_csv,
)
from posterml.genres import GENRE_INDEX, GENRES

# Four genres a model tells apart at a glance (the generator gives them four shapes and far
# apart hues; Horror, Western and Animation would all be orange triangles), 24 posters each,
# one genre per poster; one poster per genre is then filed under the next genre.
CLEAN_GENRES = ("Action", "Comedy", "Crime", "Family")
PER_GENRE = 24
FLIPPED = {5: "Comedy", 31: "Crime", 57: "Family", 83: "Action"}  # row -> wrong genre


def write_flipped_set(root: Path) -> Path:
    """The learnable set above as a folder dataset, labels of ``FLIPPED`` rows swapped."""
    rng = np.random.default_rng(7)
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(len(CLEAN_GENRES) * PER_GENRE):
        genre = CLEAN_GENRES[i // PER_GENRE]
        # Two shapes of its genre: the generator leaves a cue out now and then.
        poster = render_poster([GENRE_INDEX[genre]] * 2, 2010, rng)
        poster.save(root / "images" / f"p{i:03d}.jpg", quality=90)
        rows.append(
            {
                "poster_id": f"p{i:03d}",
                "title": f"Poster {i}",
                "year": 2010 + i % 10,
                "genres": FLIPPED.get(i, genre),
                "image": f"images/p{i:03d}.jpg",
            }
        )
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


@pytest.fixture(scope="module")
def flipped_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_flipped_set(tmp_path_factory.mktemp("audit") / "shop")


@pytest.fixture(scope="module")
def audited(flipped_set: Path):
    return audit_dataset(load_folder(flipped_set), AuditSettings(folds=4), progress=False)


def test_flipped_labels_rank_at_the_top(audited):
    ids = list(audited.dataset.ids)
    flipped = [ids.index(f"p{i:03d}") for i in FLIPPED]
    rank = np.empty(len(ids), dtype=int)
    rank[audited.suspects.ranking()] = np.arange(len(ids))
    # 4 wrong labels among 96: all of them flagged, and all among the 6 worst.
    assert audited.suspects.flagged[flipped].all()
    assert max(rank[flipped]) < 6, rank[flipped]
    for i, wrong in FLIPPED.items():
        row = ids.index(f"p{i:03d}")
        right = CLEAN_GENRES[i // PER_GENRE]
        assert audited.suspects.suspect[row, GENRE_INDEX[wrong]]
        assert audited.suspects.missing[row, GENRE_INDEX[right]]
    # The 92 right labels are left alone, or nearly.
    assert audited.n_flagged <= 2 * len(FLIPPED)


def test_csv_opens_in_the_review_queue_and_fixes_reach_the_dataset(
    audited, flipped_set: Path, tmp_path: Path
):
    from posterml.cli import main
    from posterml.review.queue import queue_from_csv

    shop = tmp_path / "shop"
    shutil.copytree(flipped_set, shop)
    # Files relative to the audited folder: the same names inside its copy.
    out = write_audit_csv(audit_frame(audited, flipped_set), shop / "audit.csv")
    table = pd.read_csv(out, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert len(table) == audited.n_flagged
    worst = table.iloc[0]
    assert worst["suspect_genres"] in FLIPPED.values() and worst["given_genres"] != worst["genres"]

    fixes = tmp_path / "shop-fixes"
    queue, left_out = queue_from_csv(out, fixes)
    assert left_out == []
    assert len(queue.posters) == len(table)
    priorities = [p.priority for p in queue.posters]
    assert priorities == sorted(priorities, reverse=True)
    first = queue.posters[0]
    assert first.name == worst["file"]
    assert first.genres == worst["genres"].split(", ")  # the proposed label comes ticked
    assert set(first.maybe) == set(worst["maybe"].split(", "))  # the disputed genres marked
    assert not queue.is_reviewed(first)  # a folder of its own: nothing counts as done yet

    # The reviewer accepts the proposal; the fix then relabels the poster in the dataset.
    queue.save(first.index, first.genres, str(first.year))
    assert main(["add", str(fixes), "--to", str(shop), "--replace"]) == 0
    labels = pd.read_csv(shop / "labels.csv", dtype=str).set_index("poster_id")
    assert labels.loc[worst["poster_id"], "genres"] == worst["genres"].replace(", ", "|")
    assert len(labels) == len(audited.dataset)


def test_unreadable_images_are_skipped_with_a_message(flipped_set: Path, tmp_path: Path, capfd):
    from posterml.cli import main

    shop = tmp_path / "shop"
    shutil.copytree(flipped_set, shop)
    (shop / "audit.csv").unlink(missing_ok=True)
    (shop / "images" / "p010.jpg").write_bytes(bad_image("truncated-jpeg"))

    code = main(["audit", str(shop), "--folds", "4", "--no-progress"])

    assert code == 0
    out, err = capfd.readouterr()
    assert "p010.jpg" in err and "skipped" in err
    assert "1 unreadable image(s) skipped" in out
    assert f"posterml review {shop / 'audit.csv'} --to {tmp_path / 'shop-fixes'}" in out
    table = pd.read_csv(shop / "audit.csv", dtype=str, encoding="utf-8-sig")
    assert "p010" not in set(table["poster_id"])
    assert {"p005", "p031", "p057", "p083"} <= set(table["poster_id"])


def test_too_small_a_dataset_is_a_clear_error(flipped_set: Path, tmp_path: Path, capfd):
    from posterml.cli import main

    shop = tmp_path / "tiny"
    (shop / "images").mkdir(parents=True)
    labels = pd.read_csv(flipped_set / "labels.csv").head(6)
    for image in labels["image"]:
        shutil.copy(flipped_set / image, shop / image)
    labels.to_csv(shop / "labels.csv", index=False)

    assert main(["audit", str(shop), "--no-progress"]) == 1
    assert "6 readable poster(s): an audit with 5 folds needs at least 10" in capfd.readouterr().err
    with pytest.raises(AuditError):
        audit_dataset(load_folder(shop), progress=False)


def test_suspect_and_missing_genres_follow_the_labels():
    """Confident learning without images: a row whose label contradicts confident
    probabilities has that genre suspect and the probable one missing."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 200)
    Y = np.zeros((200, len(GENRES)), np.uint8)
    Y[np.arange(200), truth] = 1
    proba = np.clip(Y * 0.8 + 0.1 + rng.normal(0, 0.03, Y.shape), 0, 1)
    Y[0] = 0
    Y[0, (truth[0] + 1) % 4] = 1  # filed under the wrong genre

    suspects = find_suspects(Y, proba)

    assert suspects.ranking()[0] == 0 and suspects.flagged.sum() == 1
    assert suspects.suspect[0].nonzero()[0].tolist() == [(truth[0] + 1) % 4]
    assert suspects.missing[0].nonzero()[0].tolist() == [truth[0]]


def test_proposed_label_is_never_empty():
    given = np.zeros(len(GENRES), bool)
    given[GENRE_INDEX["Drama"]] = True
    proba = np.full(len(GENRES), 0.1)
    proba[GENRE_INDEX["Horror"]] = 0.4
    none = np.zeros(len(GENRES), bool)
    assert proposed_genres(given, given, none, proba) == ["Horror"]
    missing = none.copy()
    missing[GENRE_INDEX["Western"]] = True
    assert proposed_genres(given, none, missing, proba) == ["Drama", "Western"]
