"""Batch scoring on Spark in local mode: the registered model through ``spark_udf``, bad
images as rows with an error (never a failed batch), outputs that appear whole or not at all.

Scores are checked against the pyfunc model itself (what ``mlflow models serve`` runs) on the
same bytes, so Spark changes nothing but where the work happens.
"""

# Fixtures are imported from engines/model_fixture and used as same-named arguments:
# ruff: noqa: F811
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bad_inputs import ODD_GOOD_IMAGES, b64, bad_image, expected_words, poster_jpeg
from engines import spark  # noqa: F401
from model_fixture import tracking_store

from posterml.cli import main
from posterml.genres import GENRES
from posterml.serving.pyfunc import SCORE_COLUMNS

pytestmark = [pytest.mark.spark, pytest.mark.slow]
BAD_CASES = ("zero-bytes", "text", "truncated-jpeg", "animated-gif", "huge-jpeg")
GOOD_CASES = ("cmyk-jpeg", "rgba-png", "16bit-rgb-png", "large-jpeg-2000x3000")


@pytest.fixture(scope="module")
def served(tiny_model):
    """The pyfunc model itself (what the scoring server runs), loaded once."""
    import mlflow

    with tracking_store(tiny_model.tracking_uri):
        return mlflow.pyfunc.load_model(tiny_model.model_uri)


def served_answer(model, files: list[Path], years: list[int] | None = None) -> pd.DataFrame:
    """The pyfunc model's own answer for these files, as the scoring server computes it."""
    frame = pd.DataFrame({"image": [b64(f.read_bytes()) for f in files]})
    if years is not None:
        frame["year"] = years
    return model.predict(frame)


def read_output(out: Path, fmt: str) -> pd.DataFrame:
    """The Spark output folder as one frame, sorted by file (Parquet: pyarrow reads folders)."""
    if fmt == "parquet":
        table = pd.read_parquet(out)
    else:
        parts = sorted(out.glob("part-*.csv"))
        table = pd.concat([pd.read_csv(p, keep_default_na=False, dtype=str) for p in parts])
    return table.sort_values("file").reset_index(drop=True)


def assert_scores_match(rows: pd.DataFrame, expected: pd.DataFrame, joined: bool = False):
    for tier in ("genres", "maybe"):
        want = ["|".join(g) for g in expected[tier]] if joined else list(expected[tier])
        got = [g if joined else list(g) for g in rows[tier]]
        assert got == [g if joined else list(g) for g in want], tier
    np.testing.assert_allclose(
        rows[SCORE_COLUMNS].to_numpy(float), expected[SCORE_COLUMNS].to_numpy(float), atol=1e-6
    )


@pytest.fixture
def folder(tmp_path) -> tuple[Path, list[Path], dict[Path, str]]:
    """Good posters (plain and unusual) and bad files from tests/bad_inputs.py, one subfolder."""
    root = tmp_path / "incoming"
    (root / "sub").mkdir(parents=True)
    good = [root / "plain.jpg", root / "sub" / "other.JPG"]
    good[0].write_bytes(poster_jpeg(seed=1))
    good[1].write_bytes(poster_jpeg(seed=2))
    for case in GOOD_CASES:
        data = ODD_GOOD_IMAGES[case]()
        suffix = ".png" if data.startswith(b"\x89PNG") else ".jpg"
        good.append(root / f"{case}{suffix}")
        good[-1].write_bytes(data)
    bad = {}
    for case in BAD_CASES:
        path = root / f"{case}.jpg"
        path.write_bytes(bad_image(case))
        bad[path] = case
    return root, sorted(good), bad


def test_a_folder_with_bad_images_scores_every_good_one(
    spark, model_store, served, folder, tmp_path
):
    from posterml.batch.spark import batch_score

    root, good, bad = folder
    out = tmp_path / "scored.parquet"
    report = batch_score(spark, [root], str(out), model_store.model_uri, batch_rows=4)
    assert (report.n_rows, report.n_errors) == (len(good) + len(bad), len(bad))
    assert report.format == "parquet" and report.out.endswith("scored.parquet")

    table = read_output(out, "parquet")
    assert list(table.columns) == ["file", "genres", "maybe", *SCORE_COLUMNS, "error"]
    ok = table[table["error"].isna()]
    assert ok["file"].tolist() == [str(p) for p in good]
    assert_scores_match(ok, served_answer(served, good))
    assert all(set(g) <= set(GENRES) and len(g) for g in ok["genres"])

    failed = table[table["error"].notna()].set_index("file")
    assert sorted(failed.index) == sorted(str(p) for p in bad)
    for path, case in bad.items():
        row = failed.loc[str(path)]
        assert len(row["genres"]) == len(row["maybe"]) == 0
        assert row[SCORE_COLUMNS].isna().all()
        assert all(word in row["error"] for word in expected_words(case)), (case, row["error"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_csv_of_paths_with_years_to_csv_replacing_the_old_output(
    spark, model_store, served, folder, tmp_path
):
    from posterml.batch.spark import batch_score

    root, good, bad = folder
    images = good[:3]
    rows = [
        {"image": str(images[0].relative_to(root)), "year": "1975"},  # relative to the table
        {"image": str(images[1]), "year": ""},  # absolute, year unknown
        {"image": str(images[2].relative_to(root)), "year": "2012"},
        {"image": "missing.jpg", "year": "1990"},
        {"image": str(images[1].relative_to(root)), "year": "12"},  # not a release year
        {"image": "", "year": "2001"},  # an empty cell: null in Spark
    ]
    table_path = root / "labels.csv"
    pd.DataFrame(rows).to_csv(table_path, index=False)
    out = tmp_path / "scored.csv"
    out.mkdir()
    (out / "stale.csv").write_text("old output\n")

    report = batch_score(
        spark, [table_path], str(out), model_store.model_uri, path_column="image",
        year_column="year", partitions=2,
    )  # fmt: skip
    assert (report.format, report.n_rows, report.n_errors) == ("csv", 6, 3)
    assert not (out / "stale.csv").exists()  # replaced whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    table = read_output(out, "csv").set_index("file")
    assert list(table.columns) == ["year", "genres", "maybe", *SCORE_COLUMNS, "error"]
    ok = table.loc[[r["image"] for r in rows[:3]]]
    assert (ok["error"] == "").all() and ok["year"].tolist() == ["1975", "", "2012"]
    expected = served_answer(served, images, years=[1975, 0, 2012])
    assert_scores_match(ok, expected, joined=True)
    assert "cannot read file" in table.loc["missing.jpg", "error"]
    assert "year 12 is not a release year" in table.loc[rows[4]["image"], "error"]
    assert table.loc[rows[4]["image"], "genres"] == table.loc[rows[4]["image"], "maybe"] == ""
    assert table.loc["", "error"] == "no path (empty)"


def test_a_failed_job_keeps_the_previous_output_and_leaves_no_temp(
    spark, model_store, folder, tmp_path
):
    """The job is cancelled once it writes (as a lost cluster would fail it)."""
    from posterml.batch.spark import batch_score

    root, _, _ = folder
    out = tmp_path / "scored.parquet"
    out.mkdir()
    (out / "part-00000.parquet").write_bytes(b"the previous output")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def cancel_once_writing() -> None:
        tracker = spark.sparkContext.statusTracker()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            writing = [p for p in tmp_path.iterdir() if p.name.startswith(".scored.parquet.")]
            if writing and tracker.getActiveJobsIds():
                spark.sparkContext.cancelAllJobs()
                return
            time.sleep(0.01)

    canceller = threading.Thread(target=cancel_once_writing, daemon=True)
    canceller.start()
    with pytest.raises(Exception, match="cancel"):
        batch_score(spark, [root], str(out), model_store.model_uri)
    canceller.join()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_batch_score(model_store, spark, folder, tmp_path, capsys):
    """``posterml batch-score``: exit 0, the summary line; the caller's session stays up."""
    root, good, bad = folder
    out = tmp_path / "cli.csv"
    code = main(
        ["batch-score", str(root), "--out", str(out), "--model", model_store.model_uri,
         "--batch-size", "3", "--partitions", "1"]
    )  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]
    total = len(good) + len(bad)
    assert f"wrote {total} row(s)" in printed.out and f"{len(bad)} unusable" in printed.out
    assert len(read_output(out, "csv")) == total
    assert not spark.sparkContext._jsc.sc().isStopped()


def test_cli_batch_score_explains_a_missing_column(model_store, spark, tmp_path, capsys):
    table = tmp_path / "paths.csv"
    pd.DataFrame({"file_name": ["a.jpg"]}).to_csv(table, index=False)
    code = main(["batch-score", str(table), "--out", str(tmp_path / "o.parquet")])
    assert code == 2
    err = capsys.readouterr().err
    assert "no column 'path'" in err and "file_name" in err and "--path-column" in err
    assert not (tmp_path / "o.parquet").exists()
