"""Labelled posters into a folder dataset, all or nothing: the logic of ``posterml add``.

A dealer's labels arrive three ways (``candidates_from_*``): a folder in the dataset format,
a ``posterml predict`` spreadsheet whose rows he corrected and marked reviewed, or image
files given one set of genres. ``add_posters`` then checks every row before it writes
anything, holds the dataset's lock, copies new images in under their content hash and
replaces ``labels.csv`` in one rename, and appends what it did to ``additions.csv``.

A poster is its image's bytes (``posterml.data.content``): the same image added twice adds
nothing, and the same image with other genres is a conflict, changed only with
``replace=True``. Posters of a reference set (kept for judging models) are refused.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from posterml.data.content import file_sha256
from posterml.data.dataset import (
    MAX_YEAR,
    MIN_YEAR,
    REQUIRED_COLUMNS,
    DatasetError,
    load_folder,
    read_labels,
    read_spreadsheet,
)
from posterml.data.images import ImageDecodeError, finish_decode, open_image, read_image_file
from posterml.genres import canonical_genre, did_you_mean, split_genres
from posterml.io import atomic_write, signals_deferred

LABELS = "labels.csv"
ADDITIONS_LOG = "additions.csv"
LOG_COLUMNS = ("added_at", "batch", "action", "poster_id", "image_sha256", "genres", "year")
LOCK_FILE = ".posterml-add.lock"
IMAGES_DIR = "images"
# The predict spreadsheet's mark: a row is the dealer's label once "reviewed" says so.
REVIEWED_COLUMN = "reviewed"
REVIEWED_MARKS = frozenset({"yes", "y", "x", "1", "true", "ok", "done", "✓", "✔"})
SUFFIX_OF_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
LOCK_TIMEOUT_S = 120.0
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


@dataclass
class AddReport:
    """What ``add_posters`` did (or, with ``dry_run``, would do)."""

    dataset: Path
    added: list[str] = field(default_factory=list)  # poster ids
    replaced: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # rows whose poster is there, same labels
    repeated: list[str] = field(default_factory=list)  # rows repeating an earlier row
    not_reviewed: int = 0
    batch: str = ""

    def summary(self) -> str:
        parts = [f"added {len(self.added)} poster(s) to {self.dataset}"]
        if self.replaced:
            parts.append(f"relabelled {len(self.replaced)}")
        if self.already:
            parts.append(f"{len(self.already)} already there with the same genres")
        if self.repeated:
            parts.append(f"{len(self.repeated)} repeated in the input")
        if self.not_reviewed:
            parts.append(f"{self.not_reviewed} row(s) not marked reviewed were left out")
        return "; ".join(parts)


# --------------------------------------------------------------------------- sources
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


# --------------------------------------------------------------------------- checks
def _check_image(candidate: Candidate) -> str | None:
    """Hash and decode the image once (the same decoder as training); the reason if bad."""
    try:
        image = open_image(read_image_file(candidate.path), str(candidate.path))
        candidate.suffix = SUFFIX_OF_FORMAT[image.format]
        finish_decode(image, str(candidate.path))
    except ImageDecodeError as exc:
        return f"{candidate.where}: {candidate.path}: {exc.reason}"
    candidate.sha256 = candidate.sha256 or file_sha256(candidate.path)
    return None if candidate.sha256 else f"{candidate.where}: {candidate.path}: unreadable"


def reference_hashes(reference: str | Path | None) -> dict[str, str]:
    """image sha256 -> poster id of a reference set (empty without one)."""
    if reference is None:
        return {}
    try:
        ref = load_folder(reference)
    except DatasetError as exc:
        raise AddError(f"reference set {reference}: unusable", [str(exc)]) from None
    return dict(zip(ref.frame["image_sha256"], ref.frame["poster_id"], strict=True))


def _labels_key(genres: Sequence[str], year: int | None) -> tuple:
    return (frozenset(genres), year)


# --------------------------------------------------------------------------- writing
def add_posters(
    candidates: Sequence[Candidate],
    dataset: str | Path,
    *,
    replace: bool = False,
    reference: str | Path | None = None,
    problems: Sequence[str] = (),
    not_reviewed: int = 0,
    dry_run: bool = False,
    lock_timeout: float = LOCK_TIMEOUT_S,
) -> AddReport:
    """Add ``candidates`` to the folder dataset ``dataset`` (created if missing), or nothing.

    Every row is checked first (genres, year, a decodable image, not in ``reference``, no
    conflict with the dataset or the input unless ``replace``); ``problems`` found earlier by
    a source reader join them. Any problem raises :class:`AddError` listing all of them, and
    the dataset is untouched. Writes hold the dataset's lock, so two adds run one after the
    other; a stop before the final rename removes the copied images and leaves the dataset
    as it was, and the rename with its ``additions.csv`` entry is not interrupted.
    """
    root = Path(dataset).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise AddError(f"--to {root}: not a folder")
    problems = list(problems)
    for candidate in candidates:
        reason = _check_image(candidate)
        if reason:
            problems.append(reason)
    in_reference = reference_hashes(reference)
    for c in candidates:
        if c.sha256 in in_reference:
            problems.append(
                f"{c.where}: this image is poster {in_reference[c.sha256]} of the reference set "
                f"{reference}, which models are judged on and never trained on"
            )
    if problems:
        raise AddError(f"nothing added to {root}: {len(problems)} problem(s)", problems)
    if not candidates:
        raise AddError(f"nothing to add to {root}: no poster given (or none marked reviewed)")
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / LOCK_FILE))
    try:
        with lock.acquire(timeout=lock_timeout):
            return _add_locked(candidates, root, replace, not_reviewed, dry_run)
    except Timeout:
        raise AddError(
            f"{root} is locked by another `posterml add` (or the review page) for over "
            f"{lock_timeout:.0f} s; try again when it is done"
        ) from None


def _existing(root: Path) -> tuple[pd.DataFrame, list[str]]:
    """The dataset's raw labels table (text cells, "" for empty) and its image hashes."""
    if not (root / LABELS).exists():
        return pd.DataFrame(columns=list(REQUIRED_COLUMNS), dtype=object), []
    try:
        hashes = load_folder(root).frame["image_sha256"].tolist()  # checks it is usable
    except DatasetError as exc:
        raise AddError(
            f"{root}: the dataset itself has problems; fix them first", [str(exc)]
        ) from None
    raw = read_labels(root / LABELS).fillna("").reset_index(drop=True)
    return raw, hashes


def _add_locked(
    candidates: Sequence[Candidate], root: Path, replace: bool, not_reviewed: int, dry_run: bool
) -> AddReport:
    raw, hashes = _existing(root)
    row_of_hash = {h: i for i, h in enumerate(hashes)}
    ids = set(raw["poster_id"].astype(str))
    report = AddReport(root, not_reviewed=not_reviewed, batch=uuid.uuid4().hex[:12])
    conflicts: list[str] = []
    first_of_hash: dict[str, Candidate] = {}
    new_rows: list[dict[str, str]] = []
    relabel: dict[int, Candidate] = {}
    for c in candidates:
        earlier = first_of_hash.get(c.sha256)
        if earlier is not None:
            if _labels_key(earlier.genres, earlier.year) != _labels_key(c.genres, c.year):
                conflicts.append(
                    f"{c.where}: the same image as {earlier.where} with other genres or year"
                )
            report.repeated.append(c.where)
            continue
        first_of_hash[c.sha256] = c
        row = row_of_hash.get(c.sha256)
        if row is not None:
            have = raw.loc[row]
            same = _labels_key(split_genres(have["genres"]), int(have["year"]))
            if same == _labels_key(c.genres, c.year):
                report.already.append(c.where)
            elif replace:
                relabel[row] = c
            else:
                conflicts.append(
                    f"{c.where}: poster {have['poster_id']} has this image with genres "
                    f"{have['genres']!r} ({have['year']}); this row says {'|'.join(c.genres)!r} "
                    f"({c.year}). Pass --replace to take the new labels"
                )
            continue
        poster_id = c.poster_id if c.poster_id and c.poster_id not in ids else c.sha256[:12]
        if poster_id in ids:
            poster_id = c.sha256
        ids.add(poster_id)
        new_rows.append(
            {
                "poster_id": poster_id,
                "title": c.title,
                "year": str(c.year),
                "genres": "|".join(c.genres),
                "image": f"{IMAGES_DIR}/{c.sha256[:16]}{c.suffix}",
                "_candidate": c,
            }
        )
    if conflicts:
        raise AddError(f"nothing added to {root}: {len(conflicts)} conflict(s)", conflicts)
    report.added = [r["poster_id"] for r in new_rows]
    report.replaced = [str(raw.loc[i, "poster_id"]) for i in relabel]
    if dry_run or not (new_rows or relabel):
        return report

    for row, c in relabel.items():
        raw.loc[row, "genres"] = "|".join(c.genres)
        raw.loc[row, "year"] = str(c.year)
    columns = list(raw.columns) + [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    copied: list[Path] = []
    committed = False
    try:
        (root / IMAGES_DIR).mkdir(exist_ok=True)
        for r in new_rows:
            target = root / r["image"]
            if file_sha256(target) != r["_candidate"].sha256:  # a copy left by a stopped add
                with atomic_write(target, "wb") as out:
                    out.write(r["_candidate"].path.read_bytes())
                copied.append(target)
        table = pd.concat(
            [
                raw,
                pd.DataFrame([{k: v for k, v in r.items() if k != "_candidate"} for r in new_rows]),
            ],
            ignore_index=True,
        ).reindex(columns=columns)
        committed = False
        with signals_deferred():  # labels and their record land together, or neither
            _write_labels(root / LABELS, table.fillna(""))
            committed = True
            _append_log(root / ADDITIONS_LOG, report, new_rows, relabel)
    except BaseException:
        if not committed:  # a stop held back until now finds the posters added: keep them
            for path in copied:
                path.unlink(missing_ok=True)
        raise
    return report


def _write_labels(path: Path, table: pd.DataFrame) -> None:
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        table.to_csv(handle, index=False, lineterminator="\n")


def _append_log(
    path: Path, report: AddReport, new_rows: list[dict], relabel: dict[int, Candidate]
) -> None:
    """``additions.csv``: one line per poster added or relabelled, with when and from where."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    entries = [("added", r["poster_id"], r["_candidate"]) for r in new_rows]
    entries += [
        ("replaced", pid, c) for pid, c in zip(report.replaced, relabel.values(), strict=True)
    ]
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if old:
            handle.write(old)
        else:
            writer.writerow([*LOG_COLUMNS, "source"])
        for action, poster_id, c in entries:
            row = [now, report.batch, action, poster_id, c.sha256, "|".join(c.genres), c.year]
            writer.writerow([*row, c.where])
