"""Where the dealer's labelled posters come from, as ``Candidate`` rows for ``posterml add``.

Three sources: a folder in the dataset format, a ``posterml predict`` spreadsheet whose rows
he corrected and marked reviewed, or image files given one set of genres and one year. The
readers check what they can without touching the dataset (genre names, with a guess for a
near miss; years) and return the problems beside the rows, so ``add`` reports every problem
at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from posterml.data.dataset import (
    MAX_YEAR,
    MIN_YEAR,
    DatasetError,
    load_folder,
    read_spreadsheet,
)
from posterml.genres import canonical_genre, did_you_mean, split_genres
from posterml.names import REVIEWED_COLUMN

LABELS = "labels.csv"
REVIEWED_MARKS = frozenset({"yes", "y", "x", "1", "true", "ok", "done", "✓", "✔"})
_SHOWN = 10


class AddError(ValueError):
    """Nothing was added; ``problems`` lists every bad row."""

    def __init__(self, summary: str, problems: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        shown = [f"  {p}" for p in self.problems[:_SHOWN]]
        if len(self.problems) > _SHOWN:
            shown.append(f"  ... and {len(self.problems) - _SHOWN} more")
        super().__init__("\n".join([summary, *shown]))


@dataclass
class Candidate:
    """One labelled poster offered to a dataset; ``where`` names its row for messages."""

    where: str
    path: Path
    genres: list[str]
    year: int | None
    title: str = ""
    poster_id: str | None = None
    sha256: str | None = None
    suffix: str = ".jpg"


def parse_genre_list(text: str, where: str, problems: list[str]) -> list[str]:
    """TMDb names from ``Drama, Comedy`` or ``Drama|Comedy`` (any case); unknown names are
    reported in ``problems`` with a guess."""
    names = [n for n in str(text).replace("|", ",").replace(";", ",").split(",") if n.strip()]
    genres = []
    for name in names:
        genre = canonical_genre(name)
        if genre is None:
            problems.append(f"{where}: unknown genre {name.strip()!r}{did_you_mean(name)}")
        elif genre not in genres:
            genres.append(genre)
    if not names:
        problems.append(f"{where}: no genres")
    return split_genres("|".join(genres))


def parse_year(value: object, where: str, problems: list[str]) -> int | None:
    """A release year from a cell or flag; a missing or bad one is reported."""
    text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
    text = text.strip()
    if text.endswith(".0"):  # spreadsheets write whole numbers as 1975.0
        text = text[:-2]
    if not text:
        problems.append(f"{where}: no year (the release year, {MIN_YEAR}-{MAX_YEAR})")
        return None
    if not text.isdigit() or not MIN_YEAR <= int(text) <= MAX_YEAR:
        problems.append(f"{where}: bad year {text!r} (need {MIN_YEAR}-{MAX_YEAR})")
        return None
    return int(text)


def candidates_from_folder(folder: str | Path) -> list[Candidate]:
    """Every poster of a folder in the dataset format (``labels.csv`` + images)."""
    try:
        dataset = load_folder(folder)
    except DatasetError as exc:
        raise AddError(f"{folder}: not a usable dataset folder", [str(exc)]) from None
    return [
        Candidate(
            where=f"{dataset.root / LABELS} poster_id={row.poster_id}",
            path=Path(row.image),
            genres=list(row.genres),
            year=int(row.year),
            title="" if pd.isna(row.title) else str(row.title),
            poster_id=str(row.poster_id),
            sha256=row.image_sha256,
        )
        for row in dataset.frame.itertuples(index=False)
    ]


def candidates_from_reviewed_csv(path: str | Path) -> tuple[list[Candidate], int, list[str]]:
    """The rows of a ``posterml predict`` csv marked reviewed: (candidates, rows left out for
    want of the mark, problems). ``file`` paths are read relative to the csv's folder, then
    to the current folder."""
    path = Path(path)
    try:
        rows = read_spreadsheet(path)
    except DatasetError as exc:
        raise AddError(str(exc)) from None
    header = set(rows[0]) if rows else set()
    missing = [c for c in ("file", "genres", REVIEWED_COLUMN) if c not in header]
    if missing:
        raise AddError(
            f"{path}: no column(s) {', '.join(missing)}: expected a `posterml predict` csv "
            f"whose checked rows say yes in the {REVIEWED_COLUMN!r} column"
        )
    candidates, problems, left_out = [], [], 0
    for line, row in enumerate(rows, start=2):
        if row[REVIEWED_COLUMN].strip().lower() not in REVIEWED_MARKS:
            left_out += 1
            continue
        where = f"{path} line {line}"
        genres = parse_genre_list(row["genres"], where, problems)
        year = parse_year(row.get("year"), where, problems)
        name = row["file"].strip()
        image = next(
            (p for p in (path.parent / name, Path(name)) if name and p.is_file()),
            Path(name) if name else path.parent / "?",
        )
        title = row.get("title", "").strip() or Path(name).stem
        candidates.append(Candidate(where, image, genres, year, title))
    return candidates, left_out, problems


def candidates_from_images(
    paths: Iterable[str | Path], genres: str, year: object
) -> tuple[list[Candidate], list[str]]:
    """Image files that share one set of genres and one year."""
    problems: list[str] = []
    names = parse_genre_list(genres or "", "--genres", problems)
    parsed_year = parse_year(year, "--year", problems)
    found = [Candidate(str(p), Path(p), names, parsed_year, Path(p).stem) for p in map(Path, paths)]
    return found, problems
