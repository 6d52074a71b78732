"""The review queue behind the review page: posters in review order, each save an ``add``.

A poster counts as reviewed once its image is in the dataset (found by content, so a page
reopened tomorrow resumes at the first poster not yet saved). Saving is
``posterml.data.additions.add_posters`` with ``replace=True`` and the reference set: the page
adds nothing that ``posterml add --replace`` would refuse, and the dataset's lock makes two
tabs (or an ``add`` in a shell) write one after the other. Undo takes back this session's
last save with ``undo_batch``.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from posterml.data.additions import AddReport, add_posters, undo_batch
from posterml.data.candidates import LABELS, AddError, Candidate, parse_genre_list, parse_year
from posterml.data.content import hash_files
from posterml.data.dataset import DatasetError, load_folder, read_spreadsheet
from posterml.names import PRIORITY_COLUMN, TEXT_COLUMN

if TYPE_CHECKING:
    from posterml.batch.years import PosterYears


@dataclass
class Poster:
    """One poster to review: what the model said, and what the dataset holds if saved."""

    index: int
    path: Path
    name: str  # relative to the folder under review: what the page shows
    genres: list[str]
    maybe: list[str] = field(default_factory=list)
    year: int | None = None
    priority: float = 0.0
    sha256: str | None = None
    text: str = ""  # what OCR read on it, for a model that reads the words


@dataclass
class Saved:
    genres: list[str]
    year: int


class ReviewQueue:
    """Posters under ``root`` in review order, saved into the folder dataset ``dataset``."""

    def __init__(
        self,
        root: Path,
        posters: list[Poster],
        dataset: Path,
        reference: Path | None = None,
        note: str = "",
        model_years: bool = False,
    ) -> None:
        self.root = root
        self.posters = posters
        self.dataset = dataset
        self.reference = reference
        self.note = note
        # True when each poster's year is the one the model predicted it with.
        self.model_years = model_years
        self.years: PosterYears | None = None  # the --years match, for the command to report
        self.skipped: set[int] = set()
        self._undo: list[tuple[str, int]] = []  # (batch, poster index) of this session's saves
        self._lock = threading.Lock()
        self.saved: dict[str, Saved] = {}
        self.refresh()

    # ------------------------------------------------------------------ state
    def refresh(self) -> None:
        """Re-read which images the dataset holds, with their labels."""
        if not (self.dataset / LABELS).is_file():
            self.saved = {}
            return
        frame = load_folder(self.dataset, allow_empty=True).frame
        self.saved = {
            sha: Saved(list(genres), int(year))
            for sha, genres, year in zip(
                frame["image_sha256"], frame["genres"], frame["year"], strict=True
            )
        }

    def is_reviewed(self, poster: Poster) -> bool:
        return poster.sha256 in self.saved

    @property
    def n_reviewed(self) -> int:
        return sum(self.is_reviewed(p) for p in self.posters)

    def next_open(self, after: int = -1) -> int | None:
        """The first poster after ``after`` (wrapping round) neither saved nor skipped."""
        n = len(self.posters)
        for step in range(1, n + 1):
            index = (after + step) % n
            poster = self.posters[index]
            if not self.is_reviewed(poster) and index not in self.skipped:
                return index
        return None

    def labels_of(self, poster: Poster) -> tuple[list[str], int | None]:
        """The labels to show: the dataset's once saved, else the model's."""
        saved = self.saved.get(poster.sha256)
        return (saved.genres, saved.year) if saved else (poster.genres, poster.year)

    # ------------------------------------------------------------------ writes
    def save(self, index: int, genres: list[str], year: str) -> AddReport:
        """Save one poster's genres and year into the dataset (``AddError`` if refused)."""
        poster = self.posters[index]
        problems: list[str] = []
        where = f"review page, {poster.name}"
        names = parse_genre_list(",".join(genres), where, problems)
        parsed_year = parse_year(year, where, problems)
        candidate = Candidate(where, poster.path, names, parsed_year, poster.path.stem)
        with self._lock:
            report = add_posters(
                [candidate], self.dataset, replace=True, reference=self.reference, problems=problems
            )
            if report.added or report.replaced:
                self._undo.append((report.batch, index))
            self.saved[candidate.sha256] = Saved(names, parsed_year)
            poster.sha256 = candidate.sha256
            self.skipped.discard(index)
        return report

    def undo(self) -> int | None:
        """Take back this session's last save; the poster's index, or None if none."""
        with self._lock:
            if not self._undo:
                return None
            batch, index = self._undo.pop()
            undo_batch(self.dataset, batch)
            self.refresh()
            return index


# ---------------------------------------------------------------------- building a queue
def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _posters(root: Path, table: pd.DataFrame) -> tuple[list[Poster], list[str]]:
    """Posters from a table of file, genres, maybe, year, review_priority and text (file
    resolved against ``root``); files outside ``root`` or unreadable are left out, with the
    reason."""
    left_out, rows = [], []
    for row in table.to_dict("records"):
        path = (root / str(row["file"])).resolve()
        if not _inside(root, path):
            left_out.append(f"{row['file']}: outside {root}, never served")
        elif not path.is_file():
            left_out.append(f"{row['file']}: no such file")
        else:
            rows.append((path, row))
    hashes = hash_files([path for path, _ in rows])
    posters = []
    for (path, row), sha in zip(rows, hashes, strict=True):
        known: list[str] = []
        genres = parse_genre_list(row["genres"], "", known) if row.get("genres") else []
        maybe = parse_genre_list(row["maybe"], "", known) if row.get("maybe") else []
        year = row.get("year")
        year = None if year == "" or pd.isna(year) else int(float(year))
        priority = float(row.get(PRIORITY_COLUMN) or 0.0)
        text = row.get(TEXT_COLUMN)
        text = "" if text is None or pd.isna(text) else str(text)
        name = str(path.relative_to(root))
        posters.append(Poster(0, path, name, genres, maybe, year, priority, sha, text))
    posters.sort(key=lambda p: -p.priority)  # stable: file order among equals
    for index, poster in enumerate(posters):
        poster.index = index
    return posters, left_out


def queue_from_csv(
    source: Path, dataset: Path, reference: Path | None = None, note: str = ""
) -> tuple[ReviewQueue, list[str]]:
    """A queue from a ``posterml predict`` csv (either format); files relative to its folder."""
    try:
        table = pd.DataFrame(read_spreadsheet(source))
    except DatasetError as exc:
        raise AddError(str(exc)) from None
    if "file" not in table:
        raise AddError(f"{source}: no 'file' column: expected a `posterml predict` csv")
    if "error" in table:
        table = table[table["error"].fillna("") == ""]
    root = source.parent.resolve()
    posters, left_out = _posters(root, table)
    return ReviewQueue(root, posters, dataset, reference, note), left_out


def queue_from_folder(
    folder: Path,
    dataset: Path,
    model_uri: str,
    years_csv: Path | None = None,
    reference: Path | None = None,
) -> tuple[ReviewQueue, list[str]]:
    """Predict a folder with the model at ``model_uri`` and queue it by review priority; with
    no model reachable, queue every poster with no genre ticked and say so.

    ``years_csv`` is matched to the posters as ``posterml predict`` matches it
    (``posterml.batch.years``), before any model is looked for: its ``YearsError`` stops
    the page, and the match is left on the queue's ``years`` for the command to report.
    """
    from posterml.batch.local import collect_files, expand_inputs, predict_files
    from posterml.team.refusals import refusal_reason

    root = folder.resolve()
    _, years = expand_inputs([folder], years_csv)  # as given: the names the report shows
    scored = True
    with tempfile.TemporaryDirectory(prefix="posterml-review-") as tmp:
        out = Path(tmp) / "genres.csv"
        try:
            predict_files(
                [root],
                model_uri,
                out,
                output_format="machine",
                progress=False,
                years_csv=years_csv,
            )
            table = pd.read_csv(out, dtype=str, keep_default_na=False)
            note = f"Genres ticked by {model_uri}."
        except Exception as exc:  # no store, no model, a model that fails to load, refused
            reason = refusal_reason(exc, model_uri) or f"{type(exc).__name__}: {exc}"
            files = collect_files([root])
            table = pd.DataFrame({"file": [str(f) for f in files]})
            if years is not None:
                table["year"] = ["" if y != y else str(int(y)) for y in years.of(files)]
            note = f"No model could be used ({reason}); every genre starts unticked."
            scored = False
    table["file"] = [os.path.relpath(Path(f).absolute(), root) for f in table["file"]]
    posters, left_out = _posters(root, table)
    queue = ReviewQueue(root, posters, dataset, reference, note, model_years=scored)
    queue.years = years
    return queue, left_out
