"""One in-memory form for every poster source: a table plus a 19-column label matrix.

Sources (a folder with ``labels.csv``, TMDb downloads, the synthetic set) all end up as a
``PosterDataset``, so splits, features and models never care where posters came from;
``posterml.data.sources.load_dataset`` picks the source by name.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from posterml.data.content import hash_files
from posterml.genres import did_you_mean, split_genres, to_matrix, unknown_genres

REQUIRED_COLUMNS = ("poster_id", "title", "year", "genres", "image")
MIN_YEAR, MAX_YEAR = 1870, 2100
_SHOWN_ROWS = 5  # offending rows quoted in an error before "... and N more"


class DatasetError(ValueError):
    """The dataset's labels are unusable; the message lists the offending rows."""


@dataclass
class PosterDataset:
    """Posters and their genres.

    ``frame`` has one row per poster: ``poster_id`` (str), ``title``, ``year`` (int),
    ``genres`` (list of names in source order, at most five), ``image`` (absolute path) and
    whatever metadata the source had. ``labels`` is the matching (n, 19) multi-hot matrix in
    ``GENRES`` order; ``image_sha256`` (``posterml.data.content``) names each image by its
    bytes. ``content_hash`` identifies labels and image bytes together.
    """

    name: str
    root: Path
    frame: pd.DataFrame
    labels: np.ndarray
    content_hash: str

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def ids(self) -> np.ndarray:
        return self.frame["poster_id"].to_numpy()

    @property
    def image_paths(self) -> list[str]:
        return self.frame["image"].tolist()

    @property
    def years(self) -> np.ndarray:
        return self.frame["year"].to_numpy()

    def subset(self, ids: np.ndarray | list[str]) -> PosterDataset:
        """The posters with these ids, in the given order (the hash is kept: same source)."""
        position = pd.Series(np.arange(len(self.frame)), index=self.frame["poster_id"])
        rows = position.loc[list(ids)].to_numpy()
        return PosterDataset(
            name=self.name,
            root=self.root,
            frame=self.frame.iloc[rows].reset_index(drop=True),
            labels=self.labels[rows],
            content_hash=self.content_hash,
        )

    def sample(self, max_posters: int | None, seed: int) -> PosterDataset:
        """At most ``max_posters`` posters drawn at random, kept in dataset order.

        All of them (this dataset) when ``max_posters`` is 0 or None or not below the size.
        The draw (``default_rng(seed).choice`` without replacement, then sorted) is the one
        every subsampling command uses, so a seed picks the same posters for an experiment
        run and a colour study.
        """
        if max_posters is not None and max_posters < 0:
            raise ValueError(f"max_posters must be 0 (no limit) or more, got {max_posters}")
        if not max_posters or max_posters >= len(self):
            return self
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(self), size=max_posters, replace=False))
        return self.subset(self.ids[keep])


def _listing(label: str, lines: list[str], count: int) -> str:
    """``  N row(s) with LABEL:``, the first few ``lines``, then ``... and M more``."""
    shown = [f"    {line}" for line in lines[:_SHOWN_ROWS]]
    more = [f"    ... and {count - _SHOWN_ROWS} more"] if count > _SHOWN_ROWS else []
    return "\n".join([f"  {count} row(s) with {label}:", *shown, *more])


def _problem(label: str, rows: pd.DataFrame, detail: pd.Series | None = None) -> str:
    """One problem and its rows; the frame's index holds each row's line in labels.csv."""
    lines = []
    for line, row in rows.head(_SHOWN_ROWS).iterrows():
        extra = f": {detail.loc[line]}" if detail is not None else ""
        poster_id = "" if pd.isna(row["poster_id"]) else row["poster_id"]
        lines.append(f"line {line} (poster_id={poster_id}){extra}")
    return _listing(label, lines, len(rows))


def _validate(raw: pd.DataFrame, root: Path) -> tuple[list[str], pd.Series]:
    """Every problem found in a labels table, each with its rows, and the image files.

    The images are the resolved file paths (None where a row's image is unusable).
    """
    problems = []
    ids = raw["poster_id"].fillna("").astype(str).str.strip()
    empty_id = ids.eq("")
    if empty_id.any():
        problems.append(_problem("an empty poster_id", raw[empty_id]))
    dup = ids.duplicated(keep=False) & ~empty_id
    if dup.any():
        problems.append(_problem("a duplicate poster_id", raw[dup]))

    years = pd.to_numeric(raw["year"], errors="coerce")
    bad_year = years.isna() | (years != years.round()) | ~years.between(MIN_YEAR, MAX_YEAR)
    if bad_year.any():
        problems.append(
            _problem(
                f"a bad year (need an integer {MIN_YEAR}-{MAX_YEAR})",
                raw[bad_year],
                raw["year"].astype(str),
            )
        )

    genre_lists = raw["genres"].fillna("").map(lambda v: str(v).split("|"))
    unknown = genre_lists.map(lambda names: unknown_genres(n.strip() for n in names if n.strip()))
    has_unknown = unknown.map(bool)
    if has_unknown.any():
        problems.append(
            _problem(
                "unknown genre names (not TMDb genres)",
                raw[has_unknown],
                unknown.map(lambda u: ", ".join(repr(n) + did_you_mean(n) for n in u)),
            )
        )
    no_genre = raw["genres"].fillna("").map(lambda v: not split_genres(v))
    if no_genre.any():
        problems.append(_problem("no genres", raw[no_genre]))

    images = raw["image"].fillna("").astype(str)
    folders: dict[str, str] = {}
    located = [_locate_image(value, str(root), folders) for value in images]
    kinds = pd.Series([kind for kind, _ in located], index=raw.index)
    for kind, label in _IMAGE_PROBLEMS.items():
        if kinds.eq(kind).any():
            problems.append(_problem(label, raw[kinds.eq(kind)], images))
    return problems, pd.Series([path for _, path in located], index=raw.index, dtype=object)


_IMAGE_PROBLEMS = {
    "absolute": "an absolute image path (images must be given relative to the folder)",
    "outside": "an image path leading outside the folder (through '..' or a symlink)",
    "missing": "a missing image file",
}


def _locate_image(value: str, root: str, folders: dict[str, str]) -> tuple[str, str | None]:
    """``("ok", resolved file)`` when ``value`` names a file inside the resolved folder
    ``root``, else ``("absolute" | "outside" | "missing", None)``.

    Why: a labels.csv is data, possibly from someone else; it must not make posterml read (and
    hash, decode and train on) ``/etc/passwd`` or ``../../secret.jpg``. Symlinks are followed
    before the check, so one inside the folder that points out of it is refused too, and
    files outside are never even tested for existence. ``folders`` caches resolved parent
    folders and plain ``os.path`` is used: this runs once per poster.
    """
    if not value.strip():
        return "missing", None
    if os.path.isabs(value):
        return "absolute", None
    head, name = os.path.split(value)
    inside = os.path.join(root, "")  # root and a separator: what every path must start with
    try:
        folder = folders.get(head)
        if folder is None:
            folder = folders[head] = os.path.realpath(os.path.join(root, head))
        if not os.path.join(folder, "").startswith(inside):
            return "outside", None
        resolved = os.path.join(folder, name)
        if name in ("", ".", ".."):
            resolved = os.path.realpath(os.path.join(root, value))
        elif stat.S_ISLNK(os.lstat(resolved).st_mode):
            resolved = os.path.realpath(resolved)
        if resolved != root and not resolved.startswith(inside):
            return "outside", None
        return ("ok", resolved) if os.path.isfile(resolved) else ("missing", None)
    except (OSError, ValueError):  # no such file, not a folder on the way, a NUL byte
        return "missing", None


def content_hash(frame: pd.DataFrame) -> str:
    """sha256 over ids, years, genres and every image's sha256, in poster_id order.

    Two copies of the same data hash alike wherever they live; any relabel or re-encoded
    image changes it. ``frame`` needs the ``image_sha256`` column ``load_folder`` adds.
    """
    digest = hashlib.sha256()
    for row in frame.sort_values("poster_id").itertuples(index=False):
        digest.update(f"{row.poster_id}\t{row.year}\t{'|'.join(row.genres)}\n".encode())
        digest.update(bytes.fromhex(row.image_sha256))
    return digest.hexdigest()


def decode_csv_text(data: bytes, labels_path: Path) -> str:
    """The file's text; UTF-8 with or without a byte order mark, anything else refused."""
    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if data.startswith(bom):
            raise DatasetError(f"{labels_path}: {name} text, not UTF-8: save it as UTF-8")
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    if b"\0" in data:
        offset = data.index(b"\0")
        raise DatasetError(
            f"{labels_path}: not UTF-8 text (NUL byte at offset {offset}, line "
            f"{_line_at(data, offset)}; UTF-16 without a byte order mark?)"
        )
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        raise DatasetError(
            f"{labels_path}: not UTF-8 text (byte 0x{data[offset]:02x} at offset {offset}, "
            f"line {_line_at(data, offset)}): save it as UTF-8"
        ) from None


def _line_at(data: bytes, offset: int) -> int:
    """The 1-based line holding byte ``offset``."""
    return data.count(b"\n", 0, offset) + 1


def _parse_labels(text: str, labels_path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, records and each record's first line, with the csv structure checked.

    Every record must have as many fields as the header (blank lines are skipped); an
    unclosed quote or other malformed quoting is refused with the line it starts on.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    records: list[list[str]] = []
    starts: list[int] = []
    ragged: list[str] = []
    consumed = 0  # physical lines read so far
    try:
        for row in reader:
            first, consumed = consumed + 1, reader.line_num
            if not row:
                continue
            if header is None:
                header = [name.strip() for name in row]
            elif len(row) != len(header):
                ragged.append(f"line {first}: expected {len(header)} fields, saw {len(row)}")
            else:
                records.append(row)
                starts.append(first)
    except csv.Error as exc:
        reason = (
            "a quote is never closed (the field runs to the end of the file)"
            if "unexpected end of data" in str(exc)
            else f"malformed csv ({exc})"
        )
        raise DatasetError(f"{labels_path}: line {consumed + 1}: {reason}") from None
    if header is None:
        raise DatasetError(
            f"{labels_path}: empty file (expected a header line "
            f"{','.join(REQUIRED_COLUMNS)} and one row per poster)"
        )
    if ragged:
        raise DatasetError(
            f"{labels_path}: malformed csv:\n"
            + _listing("the wrong number of fields", ragged, len(ragged))
        )
    return header, records, starts


def read_labels(labels_path: str | Path, *, allow_empty: bool = False) -> pd.DataFrame:
    """A folder's ``labels.csv`` as text columns, indexed by each row's line in the file.

    Any unreadable file (not UTF-8, empty, ragged rows, unclosed quotes, missing or
    repeated columns, no rows unless ``allow_empty``) raises one ``DatasetError`` naming the
    file and the problem. Empty cells are NaN.
    """
    labels_path = Path(labels_path)
    try:
        data = labels_path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{labels_path}: cannot read ({exc.strerror or exc})") from None
    header, records, starts = _parse_labels(decode_csv_text(data, labels_path), labels_path)
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        shown = ", ".join(repr(name) for name in repeated)
        raise DatasetError(f"{labels_path}: repeated column(s) {shown}")
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing_cols:
        raise DatasetError(f"{labels_path}: missing column(s) {', '.join(missing_cols)}")
    if not records and not allow_empty:
        raise DatasetError(f"{labels_path}: no poster rows (only the header line)")
    raw = pd.DataFrame(records, columns=header, index=starts, dtype=object)
    return raw.mask(raw.eq(""))


def load_folder(
    root: str | Path, name: str | None = None, *, allow_empty: bool = False
) -> PosterDataset:
    """Load a folder holding ``labels.csv`` and images, in the format of ``../shared/posters``.

    ``labels.csv`` is UTF-8 (a byte order mark is fine). Columns ``poster_id, title, year,
    genres, image`` are required (others are kept as metadata, as text); ``genres`` are TMDb
    names joined by ``|`` (first five kept) and ``image`` is a path relative to the folder
    that must stay inside it: absolute paths, ``..`` and symlinks leading out are refused.
    All row problems are reported together in one ``DatasetError``. Image *contents* are
    checked later, when features are computed, so one bad JPEG is skipped rather than
    failing the load. ``frame["image"]`` holds the resolved paths. ``allow_empty`` accepts
    a ``labels.csv`` with only its header: a dataset that posters are added to may be empty
    (a new one, or its only addition undone); one to train on may not.
    """
    root = Path(root).expanduser().resolve()
    labels_path = root / "labels.csv"
    if not labels_path.is_file():
        raise DatasetError(f"{root}: no labels.csv (expected a folder like ../shared/posters)")
    raw = read_labels(labels_path, allow_empty=allow_empty)
    problems, images = _validate(raw, root)
    if problems:
        raise DatasetError(
            f"{labels_path}: {len(raw)} rows, problems found:\n" + "\n".join(problems)
        )

    frame = raw.copy()
    frame["poster_id"] = frame["poster_id"].astype(str).str.strip()
    frame["year"] = pd.to_numeric(frame["year"]).astype(int)
    frame["genres"] = frame["genres"].map(split_genres)
    frame["image"] = images
    frame["image_sha256"] = hash_files(images.tolist())
    unreadable = frame["image_sha256"].isna()
    if unreadable.any():  # present a moment ago: removed or unreadable since
        raise DatasetError(
            f"{labels_path}: images could not be read:\n"
            + _problem("an unreadable image file", raw[unreadable.to_numpy()], raw["image"])
        )
    frame = frame.reset_index(drop=True)
    return PosterDataset(
        name=name or root.name,
        root=root,
        frame=frame,
        labels=to_matrix(frame["genres"].tolist()),
        content_hash=content_hash(frame),
    )


def read_spreadsheet(path: str | Path) -> list[dict[str, str]]:
    """A csv a person edited, as dicts of text: UTF-8 with or without BOM, and comma,
    semicolon or tab between cells (spreadsheets save by locale). ``DatasetError`` if
    unreadable."""
    path = Path(path)
    try:
        text = decode_csv_text(path.read_bytes(), path)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return [{(k or "").strip(): (v or "") for k, v in row.items()} for row in reader]
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed csv ({exc})") from None
