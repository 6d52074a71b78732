"""Labelled posters into a folder dataset, all or nothing: the logic of ``posterml add``.

A dealer's labels arrive as ``Candidate`` rows (``posterml.data.candidates``).
``add_posters`` checks every row before it writes anything, holds the dataset's lock,
copies new images in under their content hash, replaces ``labels.csv`` in one rename and
appends what it did to ``additions.csv``; ``undo_batch`` takes one addition back.

A poster is its image's bytes (``posterml.data.content``): the same image added twice adds
nothing, and the same image with other genres is a conflict, changed only with
``replace=True``. Posters of a reference set (kept for judging models) are refused.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from posterml.data.candidates import LABELS, AddError, Candidate
from posterml.data.content import bytes_sha256, file_sha256
from posterml.data.dataset import (
    REQUIRED_COLUMNS,
    DatasetError,
    load_folder,
    read_labels,
)
from posterml.data.images import ImageDecodeError, finish_decode, open_image, read_image_file
from posterml.genres import split_genres
from posterml.io import atomic_write, signals_deferred

ADDITIONS_LOG = "additions.csv"
LOG_COLUMNS = (
    "added_at",
    "batch",
    "action",  # added, replaced, or undone (undo_batch)
    "poster_id",
    "image_sha256",
    "genres",
    "year",
    "previous_genres",  # a relabelled poster's labels before, for undo
    "previous_year",
    "source",
)
LOCK_FILE = ".posterml-add.lock"
IMAGES_DIR = "images"
SUFFIX_OF_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
LOCK_TIMEOUT_S = 120.0


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


# --------------------------------------------------------------------------- checks
def _check_image(candidate: Candidate) -> str | None:
    """Read, hash and decode the image once (the same decoder as training); the reason if
    bad."""
    try:
        data = read_image_file(candidate.path)
        image = open_image(data, str(candidate.path))
        candidate.suffix = SUFFIX_OF_FORMAT[image.format]
        finish_decode(image, str(candidate.path))
    except ImageDecodeError as exc:
        return f"{candidate.where}: {candidate.path}: {exc.reason}"
    candidate.sha256 = candidate.sha256 or bytes_sha256(data)
    return None


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
        hashes = load_folder(root, allow_empty=True).frame["image_sha256"].tolist()  # usable?
    except DatasetError as exc:
        raise AddError(
            f"{root}: the dataset itself has problems; fix them first", [str(exc)]
        ) from None
    raw = read_labels(root / LABELS, allow_empty=True).fillna("").reset_index(drop=True)
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

    entries = [_entry(report.batch, "added", r["poster_id"], r["_candidate"]) for r in new_rows]
    for row, c in relabel.items():
        entries.append(
            _entry(report.batch, "replaced", raw.loc[row, "poster_id"], c)
            | {"previous_genres": raw.loc[row, "genres"], "previous_year": raw.loc[row, "year"]}
        )
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
                copied.append(target)  # before the rename: a stop may land right after it
                with atomic_write(target, "wb") as out:
                    out.write(r["_candidate"].path.read_bytes())
        table = pd.concat(
            [
                raw,
                pd.DataFrame([{k: v for k, v in r.items() if k != "_candidate"} for r in new_rows]),
            ],
            ignore_index=True,
        ).reindex(columns=columns)
        with signals_deferred():  # labels and their record land together, or neither
            _write_labels(root / LABELS, table.fillna(""))
            committed = True
            _append_log(root / ADDITIONS_LOG, entries)
    except BaseException:
        if not committed:  # a stop held back until now finds the posters added: keep them
            with signals_deferred():  # a second Ctrl-C must not cut the clean-up short
                for path in copied:
                    path.unlink(missing_ok=True)
        raise
    return report


def _write_labels(path: Path, table: pd.DataFrame) -> None:
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        table.to_csv(handle, index=False, lineterminator="\n")


def _entry(batch: str, action: str, poster_id: str, c: Candidate) -> dict[str, object]:
    return {
        "batch": batch,
        "action": action,
        "poster_id": poster_id,
        "image_sha256": c.sha256,
        "genres": "|".join(c.genres),
        "year": c.year,
        "source": c.where,
    }


def _append_log(path: Path, entries: list[dict[str, object]]) -> None:
    """``additions.csv``: one line per poster added, relabelled or undone, with when and
    from where (``LOG_COLUMNS``)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, LOG_COLUMNS, lineterminator="\n")
        if old:
            handle.write(old)
        else:
            writer.writeheader()
        writer.writerows({"added_at": now, **entry} for entry in entries)


def read_log(dataset: str | Path) -> pd.DataFrame:
    """The dataset's ``additions.csv`` as text (empty with the columns when there is none)."""
    path = Path(dataset) / ADDITIONS_LOG
    if not path.exists():
        return pd.DataFrame(columns=list(LOG_COLUMNS), dtype=str)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def undo_batch(dataset: str | Path, batch: str, lock_timeout: float = LOCK_TIMEOUT_S) -> list[str]:
    """Take back what one ``add`` (``batch``) did; returns the poster ids it touched.

    Its added posters leave ``labels.csv`` (and their copied images, unless another row uses
    them), its relabelled posters get their previous genres and year back, and the log
    records each as ``undone``. Raises :class:`AddError` for an unknown or undone batch."""
    root = Path(dataset).expanduser().resolve()
    try:
        with FileLock(str(root / LOCK_FILE)).acquire(timeout=lock_timeout):
            return _undo_locked(root, batch)
    except Timeout:
        raise AddError(f"{root} is locked by another writer; try again") from None


def _undo_locked(root: Path, batch: str) -> list[str]:
    log = read_log(root)
    mine = log[log["batch"] == batch]
    if mine.empty:
        raise AddError(f"{root}: no addition {batch!r} in {ADDITIONS_LOG}")
    if (mine["action"] == "undone").any():
        raise AddError(f"{root}: addition {batch!r} was already undone")
    raw = read_labels(root / LABELS, allow_empty=True).fillna("").reset_index(drop=True)
    added = set(mine.loc[mine["action"] == "added", "poster_id"])
    gone = raw.loc[raw["poster_id"].isin(added), "image"].tolist()
    raw = raw[~raw["poster_id"].isin(added)].reset_index(drop=True)
    for entry in mine[mine["action"] == "replaced"].itertuples(index=False):
        rows = raw["poster_id"] == entry.poster_id
        raw.loc[rows, "genres"] = entry.previous_genres
        raw.loc[rows, "year"] = entry.previous_year
    entries = [
        {**entry, "action": "undone", "source": f"undo of {entry['action']}"}
        for entry in mine.drop(columns=["added_at"]).to_dict("records")
    ]
    with signals_deferred():
        _write_labels(root / LABELS, raw)
        _append_log(root / ADDITIONS_LOG, entries)
    for image in set(gone) - set(raw["image"]):
        (root / image).unlink(missing_ok=True)
    return list(mine["poster_id"])
