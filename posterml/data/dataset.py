"""One in-memory form for every poster source: a table plus a 19-column label matrix.

Sources (a folder with ``labels.csv``, TMDb downloads, the synthetic set) all end up as a
``PosterDataset``, so splits, features and models never care where posters came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from posterml.genres import GENRES, split_genres, to_matrix, unknown_genres

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
    ``GENRES`` order. ``content_hash`` identifies labels and image bytes together.
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

    def drop(self, ids: list[str] | set[str]) -> PosterDataset:
        """A copy without the posters whose ids are given (for unreadable images)."""
        drop = set(ids)
        keep = [i for i in self.ids if i not in drop]
        return self.subset(keep)


def _problem(label: str, rows: pd.DataFrame, detail: pd.Series | None = None) -> str:
    lines = []
    for index, row in rows.head(_SHOWN_ROWS).iterrows():
        extra = f": {detail.loc[index]}" if detail is not None else ""
        lines.append(f"    line {index + 2} (poster_id={row['poster_id']}){extra}")
    more = f"\n    ... and {len(rows) - _SHOWN_ROWS} more" if len(rows) > _SHOWN_ROWS else ""
    return f"  {len(rows)} row(s) with {label}:\n" + "\n".join(lines) + more


def _validate(raw: pd.DataFrame, root: Path) -> list[str]:
    """Every problem found in a labels table, each with its rows (line numbers are 1-based)."""
    problems = []
    ids = raw["poster_id"].astype(str).str.strip()
    empty_id = ids.isin(["", "nan"])
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
                unknown.map(lambda u: ", ".join(repr(n) for n in u)),
            )
        )
    no_genre = raw["genres"].fillna("").map(lambda v: not split_genres(v))
    if no_genre.any():
        problems.append(_problem("no genres", raw[no_genre]))

    paths = raw["image"].fillna("").astype(str).map(lambda p: root / p if p else None)
    missing = paths.map(lambda p: p is None or not p.is_file())
    if missing.any():
        problems.append(_problem("a missing image file", raw[missing], raw["image"].astype(str)))
    return problems


def content_hash(frame: pd.DataFrame) -> str:
    """sha256 over ids, years, genres and every image's bytes, in poster_id order.

    Two copies of the same data hash alike wherever they live; any relabel or re-encoded
    image changes it.
    """
    digest = hashlib.sha256()
    for row in frame.sort_values("poster_id").itertuples(index=False):
        digest.update(f"{row.poster_id}\t{row.year}\t{'|'.join(row.genres)}\n".encode())
        digest.update(hashlib.sha256(Path(row.image).read_bytes()).digest())
    return digest.hexdigest()


def load_folder(root: str | Path, name: str | None = None) -> PosterDataset:
    """Load a folder holding ``labels.csv`` and images, in the format of ``../shared/posters``.

    Columns ``poster_id, title, year, genres, image`` are required (others are kept as
    metadata); ``genres`` are TMDb names joined by ``|`` (first five kept) and ``image`` is a
    path relative to the folder. All problems are reported together in one ``DatasetError``.
    Image *contents* are checked later, when features are computed, so one bad JPEG is
    skipped rather than failing the load.
    """
    root = Path(root).expanduser().resolve()
    labels_path = root / "labels.csv"
    if not labels_path.is_file():
        raise DatasetError(f"{root}: no labels.csv (expected a folder like ../shared/posters)")
    raw = pd.read_csv(labels_path, dtype={"poster_id": str}, keep_default_na=False, na_values=[""])
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing_cols:
        raise DatasetError(f"{labels_path}: missing column(s) {', '.join(missing_cols)}")
    problems = _validate(raw, root)
    if problems:
        raise DatasetError(
            f"{labels_path}: {len(raw)} rows, problems found:\n" + "\n".join(problems)
        )

    frame = raw.copy()
    frame["poster_id"] = frame["poster_id"].astype(str).str.strip()
    frame["year"] = pd.to_numeric(frame["year"]).astype(int)
    frame["genres"] = frame["genres"].map(split_genres)
    frame["image"] = [str(root / p) for p in frame["image"]]
    frame = frame.reset_index(drop=True)
    return PosterDataset(
        name=name or root.name,
        root=root,
        frame=frame,
        labels=to_matrix(frame["genres"].tolist()),
        content_hash=content_hash(frame),
    )


def load_dataset(source: str | Path, **synthetic_options: int) -> PosterDataset:
    """``"synthetic"`` gives the generated demo set; anything else is a folder path."""
    if str(source) == "synthetic":
        from posterml.data.synthetic import synthetic_dataset

        return synthetic_dataset(**synthetic_options)
    return load_folder(source)


def genre_counts(dataset: PosterDataset) -> pd.Series:
    """Posters per genre, in ``GENRES`` order."""
    return pd.Series(dataset.labels.sum(axis=0), index=list(GENRES))
