"""Folder and synthetic loaders: the one in-memory form, clear errors on bad rows."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from helpers import write_folder, write_image

from posterml.data import synthetic
from posterml.data.dataset import DatasetError, load_dataset, load_folder
from posterml.data.images import ImageDecodeError, decode_image, load_image
from posterml.data.synthetic import synthetic_dataset
from posterml.genres import GENRES


def test_folder_loads_genres_in_fixed_order_and_keeps_first_five(tmp_path):
    root = write_folder(
        tmp_path / "d",
        [
            {"poster_id": "1", "year": 1975, "genres": "Western|Drama"},
            {
                "poster_id": "2",
                "year": 2012,
                "genres": "Action|Comedy|Crime|Drama|Horror|War|Music",
            },
        ],
    )
    data = load_folder(root)
    assert data.labels.shape == (2, 19)
    assert data.frame.loc[0, "genres"] == ["Western", "Drama"]
    assert data.labels[0, GENRES.index("Western")] == 1
    assert data.frame.loc[1, "genres"] == ["Action", "Comedy", "Crime", "Drama", "Horror"]
    assert data.labels[1].sum() == 5 and data.labels[1, GENRES.index("War")] == 0
    assert data.frame["year"].tolist() == [1975, 2012]


def test_bad_rows_are_listed_together(tmp_path):
    rows = [
        {"poster_id": "1", "year": 1990, "genres": "Drama"},
        {"poster_id": "1", "year": 1991, "genres": "Comedy"},
        {"poster_id": "3", "year": "nineteen", "genres": "Drama"},
        {"poster_id": "4", "year": 1995, "genres": "Drama|Sci-Fi"},
        {"poster_id": "5", "year": 1996, "genres": "Drama", "image": "images/none.jpg"},
    ]
    root = write_folder(tmp_path / "d", rows)
    with pytest.raises(DatasetError) as err:
        load_folder(root)
    message = str(err.value)
    assert "duplicate poster_id" in message and "line 2 (poster_id=1)" in message
    assert "bad year" in message and "nineteen" in message
    assert "unknown genre" in message and "'Sci-Fi'" in message
    assert "missing image file" in message and "images/none.jpg" in message


def test_error_lists_first_rows_and_the_count(tmp_path):
    rows = [{"poster_id": str(i), "year": 1990, "genres": "Nope"} for i in range(12)]
    with pytest.raises(DatasetError, match=r"(?s)12 row\(s\) with unknown genre.*and 7 more"):
        load_folder(write_folder(tmp_path / "d", rows))


def test_missing_labels_or_columns(tmp_path):
    with pytest.raises(DatasetError, match="no labels.csv"):
        load_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("poster_id,title\n1,x\n")
    with pytest.raises(DatasetError, match="missing column.*year"):
        load_folder(tmp_path)


def test_content_hash_changes_with_image_bytes(tmp_path):
    root = write_folder(tmp_path / "d", [{"poster_id": "1", "year": 1990, "genres": "Drama"}])
    before = load_folder(root).content_hash
    assert load_folder(root).content_hash == before
    write_image(root / "images" / "1.jpg", seed=99)
    assert load_folder(root).content_hash != before


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty"),
        (b"hello, I am text", "not an image"),
    ],
)
def test_decode_rejects_non_images(content, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(content)


def test_decode_rejects_truncated_jpeg_and_bombs(tmp_path):
    good = write_image(tmp_path / "a.jpg", size=(200, 300)).read_bytes()
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        decode_image(good[: len(good) // 2])
    big = tmp_path / "big.png"
    from PIL import Image

    Image.new("L", (9000, 9000)).save(big)  # 81 Mpx: over the limit, tiny file
    with pytest.raises(ImageDecodeError, match="too large"):
        load_image(big)
    with pytest.raises(ImageDecodeError, match="cannot read"):
        load_image(tmp_path / "absent.jpg")


def test_synthetic_is_deterministic_and_tagged_by_name():
    a, b = synthetic_dataset(n=40, seed=3), synthetic_dataset(n=40, seed=3)
    assert a.name == "synthetic" and len(a) == 40
    assert a.content_hash == b.content_hash
    assert synthetic_dataset(n=40, seed=4).content_hash != a.content_hash
    assert (a.labels.sum(axis=1) >= 1).all()
    assert load_dataset("synthetic").name == "synthetic"


def test_interrupted_synthetic_build_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def render_then_stop(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_render(*args)

    real_render = synthetic.render_poster
    monkeypatch.setattr(synthetic, "render_poster", render_then_stop)
    with pytest.raises(KeyboardInterrupt):
        synthetic.write_synthetic(tmp_path / "set", n=5)
    assert list(tmp_path.iterdir()) == []  # no hidden half-built folder left behind
    monkeypatch.setattr(synthetic, "render_poster", real_render)
    saved = os.umask(0o022)
    try:
        folder = synthetic.write_synthetic(tmp_path / "set", n=5)
    finally:
        os.umask(saved)
    assert [p.name for p in tmp_path.iterdir()] == ["set"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # the umask's, not mkdtemp's 0700


@pytest.mark.shared
def test_shared_posters_load(shared_posters):
    data = load_folder(shared_posters)
    assert len(data) == 5533 and data.labels.shape == (5533, 19)
    assert np.all(data.labels.sum(axis=1) >= 1)
