"""The dealer's release years for ``posterml predict``, as the server takes them.

Years come from a csv: either the input list itself (``posterml predict posters.csv``, with
a ``file`` or ``image`` column and an optional ``year`` column) or ``--years years.csv``
beside folders of images. A file's path is read relative to the csv's folder. A year
outside the release range names its row; an empty cell means unknown (no period prior).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from posterml.data.dataset import DatasetError, read_spreadsheet
from posterml.serving.limits import FIRST_YEAR, LAST_YEAR
from posterml.serving.rows import year_problem

PATH_COLUMNS = ("file", "image")


class YearsError(ValueError):
    """A years csv is unusable; the message names the file and the row."""


def read_year_table(path: str | Path) -> tuple[list[Path], dict[Path, float]]:
    """(the files in row order, file -> year) from a csv; unknown years are left out."""
    path = Path(path)
    try:
        rows = read_spreadsheet(path)
    except DatasetError as exc:
        raise YearsError(str(exc)) from None
    column = next((c for c in PATH_COLUMNS if rows and c in rows[0]), None)
    if column is None:
        raise YearsError(f"{path}: no 'file' or 'image' column (and no rows?)")
    files, years, bad = [], {}, []
    for line, row in enumerate(rows, start=2):
        name = row[column].strip()
        if not name:
            bad.append(f"line {line}: no {column}")
            continue
        file = (path.parent / name).resolve()
        files.append(file)
        text = row.get("year", "").strip().removesuffix(".0")
        if not text:
            continue
        try:
            year = float(text)
        except ValueError:
            year = math.nan
        # A csv names years in whole numbers; 0 is no year here (leave the cell empty).
        if not (math.isfinite(year) and year.is_integer() and year and not year_problem(year)):
            bad.append(
                f"line {line}: year {text!r} is not a release year ({FIRST_YEAR}-{LAST_YEAR})"
            )
        else:
            years[file] = year
    if bad:
        raise YearsError(f"{path}: " + "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))
    return files, years


def years_of(files: list[Path], table: dict[Path, float]) -> np.ndarray:
    """Each file's year from ``table`` (keys resolved paths), NaN where unknown."""
    return np.array([table.get(Path(f).resolve(), math.nan) for f in files], dtype=np.float64)
