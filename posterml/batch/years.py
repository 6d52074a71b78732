"""The dealer's release years for ``posterml predict`` and the review page, as the server
takes them.

Years come from a csv: either the input list itself (``posterml predict posters.csv``, with
a ``file`` or ``image`` column and an optional ``year`` column; its rows are the posters,
read relative to the csv's folder) or ``--years years.csv`` beside folders of images.
:func:`match_years` is the one way a ``--years`` row finds its poster: by its path as
given (relative to the csv's folder or to the working folder), by its path inside a scanned
folder, or by its bare file name when no other scanned file has that name. Whatever cannot
be used is counted in :class:`PosterYears` (rows matching no poster, years that are no
release year, posters left without a year) and listed by the command, never dropped unsaid;
a bare name two scanned files share, a poster given two years, or a years csv of which no
row matches at all stop the command before anything is scored (:class:`YearsError`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from posterml.data.dataset import DatasetError, read_spreadsheet
from posterml.serving.rows import year_problem

PATH_COLUMNS = ("file", "image")
SHOWN = 3  # names quoted in a summary line; the detail csv has them all
SHOWN_ERRORS = 5


class YearsError(ValueError):
    """A years csv is unusable; the message names the file and the row."""


@dataclass(frozen=True)
class YearRow:
    """One row of a years csv: the file and the year as written, and where it was read."""

    source: Path
    line: int
    name: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.source.name} line {self.line}"

    @property
    def cell(self) -> str:
        """The year as written, without the ``.0`` a spreadsheet may add."""
        return self.text.strip().removesuffix(".0")

    def year(self) -> tuple[float, str | None]:
        """(the year, or NaN when the cell is empty or unusable; why it is unusable)."""
        text = self.cell
        if not text:
            return math.nan, None
        try:
            year = float(text)
        except ValueError:
            return math.nan, f"year {self.text.strip()!r} is not a number"
        # A csv names years in whole numbers; 0 is no year here (leave the cell empty).
        if not (math.isfinite(year) and year.is_integer() and year):
            return math.nan, f"year {self.text.strip()!r} is not a whole release year"
        problem = year_problem(year)
        return (math.nan, problem) if problem else (year, None)


def read_year_rows(path: str | Path) -> tuple[list[YearRow], bool]:
    """The rows of a years csv (or of an input list) and whether it has a ``year`` column;
    :class:`YearsError` when it has no file column or a row names no file."""
    path = Path(path)
    try:
        rows = read_spreadsheet(path)
    except DatasetError as exc:
        raise YearsError(str(exc)) from None
    column = next((c for c in PATH_COLUMNS if rows and c in rows[0]), None)
    if column is None:
        raise YearsError(f"{path}: no 'file' or 'image' column (and no rows?)")
    found, empty = [], []
    for line, row in enumerate(rows, start=2):
        name = row[column].strip()
        if not name:
            empty.append(f"line {line}")
        found.append(YearRow(path, line, name, row.get("year", "")))
    if empty:
        shown = ", ".join(empty[:SHOWN_ERRORS]) + (" ..." if len(empty) > SHOWN_ERRORS else "")
        raise YearsError(f"{path}: no {column} on {shown}")
    return found, "year" in rows[0]


def read_listing(path: str | Path) -> tuple[list[Path], dict[Path, YearRow]]:
    """An input csv that lists the posters: (its files, relative to its folder, in row
    order; each file's row when the csv has a ``year`` column)."""
    path = Path(path)
    rows, has_years = read_year_rows(path)
    files = [(path.parent / row.name).resolve() for row in rows]
    return files, dict(zip(files, rows, strict=True)) if has_years else {}


@dataclass
class PosterYears:
    """The year each poster reaches the model with, and what could not be used."""

    sources: list[str]
    n_posters: int
    years: dict[Path, float] = field(default_factory=dict)  # resolved path -> year
    unmatched: list[tuple[str, str]] = field(default_factory=list)  # (row's file, why)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (poster, why)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (poster, why)

    def of(self, files: Sequence[str | Path]) -> np.ndarray:
        """Each file's year, NaN where unknown."""
        return np.array(
            [self.years.get(Path(f).resolve(), math.nan) for f in files], dtype=np.float64
        )

    def problems(self) -> list[tuple[str, str]]:
        """``(file, reason)`` for everything not used, as ``<out>.skipped.csv`` lists files."""
        return [*self.unmatched, *self.bad, *self.missing]

    def summary(self, listed_in: Path | None = None) -> str:
        """One line: how many posters have a year, and how many of each problem, with the
        first few names."""

        def part(items: list[tuple[str, str]], what: str) -> str:
            names = ", ".join(name for name, _ in items[:SHOWN])
            return f"{len(items)} {what} ({names}{', ...' if len(items) > SHOWN else ''})"

        parts = [f"{len(self.years)} of {self.n_posters} poster(s) have one"]
        if self.unmatched:
            parts.append(part(self.unmatched, "row(s) match no poster"))
        if self.bad:
            parts.append(part(self.bad, "year(s) are no release year"))
        if self.missing:
            parts.append(part(self.missing, "poster(s) have none"))
        line = f"years from {', '.join(self.sources)}: " + "; ".join(parts)
        return line + (f"; listed in {listed_in}" if listed_in and self.problems() else "")


def _normal(name: str) -> str:
    """A file name as written, with either slash, as a relative posix path."""
    return str(PurePosixPath(name.replace("\\", "/")))


def _match_rows(
    files: Sequence[Path], folders: Sequence[Path], rows: Sequence[YearRow]
) -> tuple[dict[Path, YearRow], list[YearRow]]:
    """Each poster's row (by path as given, path inside a scanned folder, or unique bare
    name) and the rows that match none; :class:`YearsError` for an ambiguous row."""
    by_path = {f.resolve(): f for f in files}
    by_inside: dict[str, set[Path]] = defaultdict(set)
    by_name: dict[str, list[Path]] = defaultdict(list)
    for file in files:
        by_name[file.name].append(file)
        for folder in folders:
            if file.is_relative_to(folder):
                by_inside[file.relative_to(folder).as_posix()].add(file)
    chosen: dict[Path, YearRow] = {}
    unmatched, errors = [], []
    for row in rows:
        name = _normal(row.name)
        bases = (row.source.parent, Path.cwd())
        hits = {by_path[p] for p in ((b / name).resolve() for b in bases) if p in by_path}
        hits |= by_inside.get(name, set())
        if "/" not in name:
            if len(by_name.get(name, [])) > 1:
                shared = ", ".join(map(str, by_name[name]))
                errors.append(
                    f"{row.where}: {row.name!r} is the name of {len(by_name[name])} scanned "
                    f"posters ({shared}); write its path inside the folder instead"
                )
                continue
            hits |= set(by_name.get(name, []))
        if len(hits) > 1:
            errors.append(f"{row.where}: {row.name!r} names {', '.join(map(str, sorted(hits)))}")
        elif not hits:
            unmatched.append(row)
        else:
            (poster,) = hits
            earlier = chosen.setdefault(poster, row)
            if earlier is not row and earlier.cell != row.cell:
                errors.append(
                    f"{earlier.where} and line {row.line} give {poster} two years "
                    f"({earlier.text.strip()!r}, {row.text.strip()!r})"
                )
    if errors:
        more = " ..." if len(errors) > SHOWN_ERRORS else ""
        raise YearsError("; ".join(errors[:SHOWN_ERRORS]) + more)
    return chosen, unmatched


def match_years(
    files: Sequence[Path],
    folders: Sequence[Path] = (),
    years_csv: str | Path | None = None,
    listed: dict[Path, YearRow] | None = None,
) -> PosterYears | None:
    """The years of the posters ``files`` (as scanned from ``folders``), from the rows of
    ``years_csv`` and the rows ``listed`` with the posters in an input csv (keyed by
    resolved path; ``years_csv`` wins where both give one). None when no years were given.

    Raises :class:`YearsError` when a row is ambiguous, a poster is given two years, or no
    row of ``years_csv`` matches any poster: said before anything is scored.
    """
    listed = listed or {}
    if years_csv is None and not listed:
        return None
    chosen, unmatched, sources = {}, [], []
    if listed:
        sources = sorted({row.source.name for row in listed.values()})
        chosen = {f: listed[f.resolve()] for f in files if f.resolve() in listed}
    if years_csv is not None:
        rows, _ = read_year_rows(years_csv)
        matched, unmatched = _match_rows(files, folders, rows)
        if rows and not matched:
            names = ", ".join(repr(r.name) for r in rows[:SHOWN])
            raise YearsError(
                f"{years_csv}: none of its {len(rows)} row(s) matches a scanned poster "
                f"({names}{' ...' if len(rows) > SHOWN else ''}); name each file by its path, "
                f"its path inside the scanned folder, or its file name"
            )
        chosen.update(matched)
        sources.append(Path(years_csv).name)
    result = PosterYears(sources, len(files))
    result.unmatched = [(r.name, f"{r.where}: matches no scanned poster") for r in unmatched]
    for file in files:
        row = chosen.get(file)
        if row is None:
            result.missing.append((str(file), f"no row in {', '.join(sources)}"))
            continue
        year, problem = row.year()
        if problem:
            result.bad.append((str(file), f"{row.where}: {problem}"))
        elif math.isnan(year):
            result.missing.append((str(file), f"{row.where}: the year is empty"))
        else:
            result.years[file.resolve()] = year
    return result
