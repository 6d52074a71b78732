"""Folder and synthetic loaders: the one in-memory form, clear errors on bad rows."""

from __future__ import annotations

import importlib
import os
import stat

import numpy as np
import pytest
from helpers import write_folder, write_image

from posterml.data import synthetic
from posterml.data.dataset import DatasetError, load_folder
from posterml.data.images import ImageDecodeError, decode_image, load_image
from posterml.data.sources import load_dataset
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


def test_image_paths_must_stay_inside_the_folder(tmp_path):
    root = write_folder(tmp_path / "d", [{"poster_id": "ok", "year": 1990, "genres": "Drama"}])
    secret = write_image(tmp_path / "secret.jpg", seed=7)  # a real image, outside the folder
    (tmp_path / "elsewhere").mkdir()
    write_image(tmp_path / "elsewhere" / "x.jpg")
    (root / "images" / "out.jpg").symlink_to(secret)
    (root / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "images" / "in.jpg").symlink_to(root / "images" / "ok.jpg")  # stays inside: fine
    escapes = {
        "dots": "../secret.jpg",
        "deep": "images/../../secret.jpg",
        "abs": str(secret),
        "link": "images/out.jpg",
        "dir": "linked/x.jpg",
        "etc": "../../../../../../../../etc/passwd",
    }
    rows = [{"poster_id": "ok", "year": 1990, "genres": "Drama"}]
    rows += [
        {"poster_id": k, "year": 1990, "genres": "Drama", "image": v} for k, v in escapes.items()
    ]
    rows += [{"poster_id": "in", "year": 1990, "genres": "Drama", "image": "images/in.jpg"}]
    write_folder(root, rows, make_images=False)
    with pytest.raises(DatasetError) as err:
        load_folder(root)
    message = str(err.value)
    assert "1 row(s) with an absolute image path" in message
    assert f"line 5 (poster_id=abs): {secret}" in message
    assert "5 row(s) with an image path leading outside the folder" in message
    for line, key in [(3, "dots"), (4, "deep"), (6, "link"), (7, "dir"), (8, "etc")]:
        assert f"line {line} (poster_id={key}): {escapes[key]}" in message
    assert "poster_id=in" not in message and "poster_id=ok" not in message
    assert "missing image" not in message  # files outside are not even looked up

    write_folder(root, [rows[0], rows[-1]], make_images=False)
    data = load_folder(root)
    assert all(path.startswith(str(root.resolve()) + "/") for path in data.image_paths)


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_poster_id_is_refused(tmp_path, empty):
    rows = [{"poster_id": "1", "year": 1990, "genres": "Drama"}]
    rows.append({"poster_id": empty, "year": 1991, "genres": "Drama", "image": "images/1.jpg"})
    with pytest.raises(DatasetError, match=r"1 row\(s\) with an empty poster_id:\n    line 3 "):
        load_folder(write_folder(tmp_path / "d", rows))


GOOD_ROW = b"1,T,1990,Drama,images/1.jpg\n"
HEADER = b"poster_id,title,year,genres,image\n"


@pytest.mark.parametrize(
    "content, expected",
    [
        (
            HEADER + b"1,Caf\xe9,1990,Drama,images/1.jpg\n",
            r"not UTF-8 text \(byte 0xe9 at offset 39, line 2\)",
        ),
        ((HEADER + GOOD_ROW).decode().encode("utf-16"), "UTF-16 text, not UTF-8"),
        ((HEADER + GOOD_ROW).decode().encode("utf-16-le"), "NUL byte at offset 1, line 1"),
        (b"", "empty file"),
        (b"\n\n", "empty file"),
        (HEADER, r"no poster rows \(only the header line\)"),
        (
            HEADER + GOOD_ROW + b"2,T,1990,Drama,images/2.jpg,x,y\n",
            "line 3: expected 5 fields, saw 7",
        ),
        (HEADER + GOOD_ROW + b"2,T,1990\n", "line 3: expected 5 fields, saw 3"),
        (HEADER + b'1,"T,1990,Drama,images/1.jpg\n2,T,1990,Drama,x\n', "line 2: a quote is never"),
        (HEADER + b'1,"T"x,1990,Drama,images/1.jpg\n', "line 2: malformed csv"),
        (b"poster_id,title,year,year,genres,image\n1," + GOOD_ROW, "repeated column.*'year'"),
    ],
    ids=[
        "latin1",
        "utf16",
        "utf16-no-bom",
        "0-bytes",
        "blank",
        "header-only",
        "too-many",
        "too-few",
        "unclosed-quote",
        "bad-quote",
        "repeated-column",
    ],
)
def test_unreadable_labels_files_give_one_clear_error(tmp_path, content, expected):
    root = write_folder(tmp_path / "d", [{"poster_id": "1", "year": 1990, "genres": "Drama"}])
    (root / "labels.csv").write_bytes(content)
    with pytest.raises(DatasetError, match=expected) as err:
        load_folder(root)
    assert str(err.value).startswith(f"{root / 'labels.csv'}: ")


def test_bom_and_multiline_fields_are_read_with_true_line_numbers(tmp_path):
    root = write_folder(tmp_path / "d", [{"poster_id": "1", "year": 1990, "genres": "Drama"}])
    text = 'poster_id,title,year,genres,image\n1,"Two\nlines",1990,Drama,images/1.jpg\n'
    (root / "labels.csv").write_bytes(("\ufeff" + text).encode())
    data = load_folder(root)
    assert data.frame.loc[0, "title"] == "Two\nlines" and data.ids.tolist() == ["1"]
    (root / "labels.csv").write_text(text + "\n2,x,1990,Drama,images/nope.jpg\n")
    with pytest.raises(DatasetError, match=r"line 5 \(poster_id=2\): images/nope.jpg"):
        load_folder(root)


@pytest.mark.parametrize("entry", ["pca_classic", "compare", "colors"])
def test_entry_points_report_a_bad_labels_file_in_one_line(tracking_uri, tmp_path, capsys, entry):
    (tmp_path / "labels.csv").write_bytes(HEADER + b"1,\xff,1990,Drama,x.jpg\n")
    if entry == "colors":
        code = importlib.import_module("experiments.colors").main(["--data", str(tmp_path)])
    else:  # as `python -m experiments.run NAME` runs it
        from posterml.modeling.entry_points import run_entry_point

        code = run_entry_point([entry, "--data", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "not UTF-8 text (byte 0xff" in err and "Traceback" not in err


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


def test_sample_draws_a_seeded_subset_in_dataset_order():
    data = synthetic_dataset(n=40, seed=3)
    assert data.sample(None, 0) is data and data.sample(0, 0) is data
    assert data.sample(40, 0) is data and data.sample(100, 0) is data
    picked = data.sample(10, seed=7)
    keep = np.sort(np.random.default_rng(7).choice(40, 10, replace=False))  # the draw of old
    assert picked.ids.tolist() == data.ids[keep].tolist()
    np.testing.assert_array_equal(picked.labels, data.labels[keep])
    assert picked.ids.tolist() == data.sample(10, seed=7).ids.tolist()
    assert picked.ids.tolist() != data.sample(10, seed=8).ids.tolist()
    with pytest.raises(ValueError, match="max_posters .* got -1"):
        data.sample(-1, 0)


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
