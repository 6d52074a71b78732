"""The 19 TMDb movie genres, in one fixed order shared by every label matrix and model.

Label matrices have one column per genre in ``GENRES`` order; metric names use each genre's slug
form (``science_fiction``) so MLflow's compare view lines them up across families.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import numpy as np

GENRES: tuple[str, ...] = (
    "Action",
    "Adventure",
    "Animation",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "History",
    "Horror",
    "Music",
    "Mystery",
    "Romance",
    "Science Fiction",
    "TV Movie",
    "Thriller",
    "War",
    "Western",
)
MAX_GENRES_PER_MOVIE = 5  # the study kept TMDb's first five genres
GENRE_INDEX = {name: i for i, name in enumerate(GENRES)}


def genre_slug(genre: str) -> str:
    """``"Science Fiction"`` -> ``"science_fiction"`` (for metric names)."""
    return genre.lower().replace(" ", "_")


def split_genres(value: str) -> list[str]:
    """Parse a ``|``-joined genre string, keeping source order and at most five genres."""
    names = [g.strip() for g in str(value).split("|") if g.strip()]
    return names[:MAX_GENRES_PER_MOVIE]


def unknown_genres(names: Iterable[str]) -> list[str]:
    """The names in ``names`` that are not TMDb genres."""
    return [n for n in names if n not in GENRE_INDEX]


_BY_LOWER = {name.lower(): name for name in GENRES}
# Names people type for a TMDb genre that no spelling distance finds.
_ALIASES = {"sci-fi": "Science Fiction", "scifi": "Science Fiction", "musical": "Music"}


def canonical_genre(name: str) -> str | None:
    """The TMDb genre ``name`` spells, ignoring case and repeated spaces, or None."""
    return _BY_LOWER.get(" ".join(str(name).split()).lower())


def did_you_mean(name: str) -> str:
    """``" (did you mean 'Science Fiction'?)"`` for a near miss of a genre name, else ``""``."""
    key = " ".join(str(name).split()).lower()
    guess = _ALIASES.get(key)
    if guess is None:
        close = difflib.get_close_matches(key, list(_BY_LOWER), n=1, cutoff=0.6)
        guess = _BY_LOWER[close[0]] if close else None
    return f" (did you mean {guess!r}?)" if guess else ""


def to_matrix(genre_lists: Sequence[Sequence[str]]) -> np.ndarray:
    """Multi-hot ``uint8`` matrix (n, 19) from lists of genre names (a name outside
    ``GENRES`` raises ``KeyError``, as an index lookup would)."""
    from sklearn.preprocessing import MultiLabelBinarizer

    unknown = unknown_genres(name for names in genre_lists for name in names)
    if unknown:
        raise KeyError(unknown[0])
    binarizer = MultiLabelBinarizer(classes=list(GENRES))
    return binarizer.fit_transform(genre_lists).astype(np.uint8).reshape(-1, len(GENRES))


def from_matrix(y: np.ndarray) -> list[list[str]]:
    """Genre name lists from a multi-hot (n, 19) matrix, in ``GENRES`` order."""
    return [[GENRES[j] for j in np.flatnonzero(row)] for row in np.asarray(y)]
