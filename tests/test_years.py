"""The dealer's ``--years`` csv: each row finds its poster by its path, its path inside the
scanned folder or its bare name; whatever cannot be used is counted and listed, and a csv
that cannot be matched stops the command before anything is scored or written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import write_image

from posterml.batch.local import expand_inputs, year_problems_path
from posterml.batch.years import YearsError
from posterml.cli import main


@pytest.fixture
def shop(tmp_path, monkeypatch) -> Path:
    """``scans/`` with 1.jpg ... 20.jpg (20 distinct posters), the shell in its parent."""
    for k in range(1, 21):
        write_image(tmp_path / "scans" / f"{k}.jpg", seed=700 + k)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def years_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("file,year\n" + "".join(f"{f},{y}\n" for f, y in rows))
    return path


def by_name(years, files) -> dict[str, float]:
    return {f.name: y for f, y in zip(files, years.of(files), strict=True) if y == y}


# ---------------------------------------------------------------- matching (no model needed)
def test_bare_names_paths_as_given_and_paths_inside_the_folder_all_match(shop):
    (shop / "scans" / "old").mkdir()
    write_image(shop / "scans" / "old" / "7b.jpg", seed=1)
    rows = [("1.jpg", "1995"), ("scans/2.jpg", "1960"), (str(shop / "scans/3.jpg"), "1971")]
    rows += [("old/7b.jpg", "1948"), ("old\\7b.jpg", "1948.0")]  # the same year twice: fine
    files, years = expand_inputs(["scans"], years_csv(shop / "years.csv", rows))
    assert by_name(years, files) == {"1.jpg": 1995, "2.jpg": 1960, "3.jpg": 1971, "7b.jpg": 1948}
    assert years.unmatched == [] and years.bad == [] and len(years.missing) == 21 - 4

    # A years csv inside the folder names its files relative to itself.
    files, years = expand_inputs(
        ["scans"], years_csv(shop / "scans" / "y.csv", [("4.jpg", "1980")])
    )
    assert by_name(years, files) == {"4.jpg": 1980}


def test_unmatched_rows_bad_years_and_posters_without_one_are_counted_and_named(shop):
    rows = [("1.jpg", "1995"), ("21.jpg", "1990"), ("2.jpg", "1800"), ("3.jpg", "2150")]
    rows += [("4.jpg", "19x"), ("5.jpg", "0"), ("6.jpg", "1999.5"), ("7.jpg", "")]
    files, years = expand_inputs(["scans"], years_csv(shop / "years.csv", rows))
    assert by_name(years, files) == {"1.jpg": 1995}
    assert years.unmatched == [("21.jpg", "years.csv line 3: matches no scanned poster")]
    bad = dict(years.bad)
    assert list(bad) == [f"scans/{k}.jpg" for k in (2, 3, 4, 5, 6)]
    assert bad["scans/2.jpg"] == "years.csv line 4: year 1800 is not a release year (1870-2100)"
    assert bad["scans/4.jpg"] == "years.csv line 6: year '19x' is not a number"
    missing = dict(years.missing)
    assert missing["scans/7.jpg"] == "years.csv line 9: the year is empty"
    assert missing["scans/8.jpg"] == "no row in years.csv" and len(missing) == 20 - 6
    assert years.summary(Path("genres.year-problems.csv")) == (
        "years from years.csv: 1 of 20 poster(s) have one; "
        "1 row(s) match no poster (21.jpg); "
        "5 year(s) are no release year (scans/2.jpg, scans/3.jpg, scans/4.jpg, ...); "
        "14 poster(s) have none (scans/10.jpg, scans/11.jpg, scans/12.jpg, ...); "
        "listed in genres.year-problems.csv"
    )


def test_a_bare_name_two_scanned_posters_share_is_an_error_naming_both(shop):
    write_image(shop / "scans" / "old" / "13.jpg", seed=2)
    years = years_csv(shop / "years.csv", [("1.jpg", "1995"), ("13.jpg", "1962")])
    with pytest.raises(YearsError) as raised:
        expand_inputs(["scans"], years)
    assert str(raised.value) == (
        "years.csv line 3: '13.jpg' is the name of 2 scanned posters "
        "(scans/13.jpg, scans/old/13.jpg); write its path inside the folder instead"
    )
    # Its path inside the folder says which one.
    years_csv(years, [("old/13.jpg", "1962"), ("scans/13.jpg", "1990")])
    files, found = expand_inputs(["scans"], years)
    assert found.of([shop / "scans/old/13.jpg", shop / "scans/13.jpg"]).tolist() == [1962, 1990]


def test_one_poster_given_two_years_and_a_csv_that_matches_nothing_stop(shop):
    years = years_csv(shop / "years.csv", [("1.jpg", "1995"), ("scans/1.jpg", "1996")])
    with pytest.raises(YearsError, match=r"line 2 and line 3 give scans/1\.jpg two years"):
        expand_inputs(["scans"], years)
    years_csv(years, [("posters/1.jpg", "1995"), ("x.jpg", "1996")])
    with pytest.raises(YearsError, match=r"none of its 2 row\(s\) matches a scanned poster"):
        expand_inputs(["scans"], years)


# ---------------------------------------------------------------- posterml predict


def predict(model_store, *args: str) -> int:
    return main(["predict", *args, "--model", model_store.model_uri, "--no-progress"])


@pytest.mark.slow
def test_the_dealers_twenty_posters_by_bare_name_get_every_year(model_store, shop, capsys):
    """`posterml predict scans --years years.csv` with rows like `13.jpg,1995`: every year
    is in genres.csv, the one line says so, and the answer is the one its paths give."""
    rows = [(f"{k}.jpg", str(1940 + 3 * k)) for k in range(1, 21)]
    years_csv(shop / "years.csv", rows)
    assert predict(model_store, "scans", "--years", "years.csv", "--out", "genres.csv") == 0
    out = capsys.readouterr().out
    assert "years from years.csv: 20 of 20 poster(s) have one\n" in out
    table = pd.read_csv("genres.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert dict(zip(table["file"], table["year"], strict=True)) == {
        f"scans/{name}": year for name, year in rows
    }
    assert not year_problems_path(Path("genres.csv")).exists()

    years_csv(shop / "paths.csv", [(f"scans/{f}", y) for f, y in rows])
    assert predict(model_store, "scans", "--years", "paths.csv", "--out", "by-path.csv") == 0
    assert Path("by-path.csv").read_text() == Path("genres.csv").read_text()


@pytest.mark.slow
def test_years_not_used_get_one_line_and_their_list(model_store, shop, capsys):
    rows = [("1.jpg", "1995"), ("21.jpg", "1990"), ("2.jpg", "1800"), ("3.jpg", "")]
    years_csv(shop / "years.csv", rows)
    assert predict(model_store, "scans", "--years", "years.csv", "--out", "genres.csv") == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "years from" in line]
    assert lines == [
        "years from years.csv: 1 of 20 poster(s) have one; 1 row(s) match no poster (21.jpg); "
        "1 year(s) are no release year (scans/2.jpg); 18 poster(s) have none (scans/10.jpg, "
        "scans/11.jpg, scans/12.jpg, ...); listed in genres.year-problems.csv"
    ]
    listed = pd.read_csv("genres.year-problems.csv", dtype=str)
    assert listed.columns.tolist() == ["file", "reason"] and len(listed) == 20
    reasons = dict(listed.values.tolist())
    assert reasons["21.jpg"] == "years.csv line 3: matches no scanned poster"
    assert reasons["scans/2.jpg"] == "years.csv line 4: year 1800 is not a release year (1870-2100)"
    assert reasons["scans/3.jpg"] == "years.csv line 5: the year is empty"
    assert reasons["scans/20.jpg"] == "no row in years.csv"
    table = pd.read_csv("genres.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    used = dict(zip(table["file"], table["year"], strict=True))
    assert used["scans/1.jpg"] == "1995" and used["scans/2.jpg"] == "" and len(table) == 20

    # Every year used next time: the list of the last run's problems goes.
    years_csv(shop / "years.csv", [(f"{k}.jpg", "1970") for k in range(1, 21)])
    assert predict(model_store, "scans", "--years", "years.csv", "--out", "genres.csv") == 0
    assert not Path("genres.year-problems.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["duplicate", "no match"])
def test_an_unmatchable_years_csv_stops_predict_and_writes_nothing(model_store, shop, capsys, case):
    if case == "duplicate":
        write_image(shop / "scans" / "old" / "13.jpg", seed=2)
        years_csv(shop / "years.csv", [("13.jpg", "1995")])
        expected = "'13.jpg' is the name of 2 scanned posters (scans/13.jpg, scans/old/13.jpg)"
    else:
        years_csv(shop / "years.csv", [("posters/13.jpg", "1995")])
        expected = "none of its 1 row(s) matches a scanned poster ('posters/13.jpg')"
    before = sorted(p.name for p in shop.iterdir())
    assert predict(model_store, "scans", "--years", "years.csv", "--out", "genres.csv") == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and expected in captured.err
    assert captured.err.startswith("posterml predict: years.csv")
    assert sorted(p.name for p in shop.iterdir()) == before  # no genres.csv, no lists
