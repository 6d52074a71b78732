"""Fetch a folder dataset from TMDb: ``labels.csv`` plus ``images/<tmdb_id>.jpg``.

For each requested decade the most popular movies with a poster and genres are listed
(:mod:`posterml.data.tmdb.discover`), their IMDb ids looked up and their posters
downloaded: the same folder layout the rest of posterml reads.

Runs are long and get interrupted: posters are written atomically
(:func:`posterml.io.atomic_write`, which also rejects bytes posterml's decoder cannot read),
existing posters are skipped, and ``labels.csv`` is rewritten atomically after every decade,
so a rerun resumes where the last one stopped and reuses the IMDb ids already found.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import requests

from posterml.data.images import ImageDecodeError, load_image
from posterml.data.tmdb.auth import Credential, scrubbed_logging
from posterml.data.tmdb.client import TMDbAuthError, TMDbClient, TMDbError
from posterml.data.tmdb.discover import (
    Movie,
    chosen_genres,
    discover_decade,
    genre_ids,
    genre_names,
    imdb_id,
)
from posterml.io import atomic_write
from posterml.progress import progress_bar, write_line

DEFAULT_IMAGE_BASE_URL = "https://image.tmdb.org/t/p"
LABEL_COLUMNS = ["poster_id", "imdb_id", "tmdb_id", "title", "year", "genres", "image"]
EXTRA_COLUMNS = ["release_date", "popularity", "vote_average", "decade"]


class PosterError(TMDbError):
    """A downloaded poster is not a decodable image."""


@dataclass
class FetchReport:
    """What :func:`fetch_tmdb` did; ``failed_ids`` are TMDb ids whose poster is missing."""

    out_dir: Path
    n_movies: int = 0
    n_downloaded: int = 0
    n_skipped_existing: int = 0
    n_failed: int = 0
    failed_ids: list[int] = field(default_factory=list)


# --------------------------------------------------------------------------- posters


def is_valid_image(path: Path) -> bool:
    """True when posterml's own decoder reads ``path`` (the same check training applies)."""
    try:
        load_image(path)
    except ImageDecodeError:
        return False
    return True


def _require_image(path: Path, poster: str) -> None:
    """Reject a download that posterml's decoder cannot read (``atomic_write``'s check)."""
    if not is_valid_image(path):
        raise PosterError(f"poster {poster}: downloaded bytes are not a decodable image")


def _save_body(dest: Path, response: requests.Response) -> None:
    """Stream a response into a temp file beside ``dest``, verify it, rename it into place.

    Why: a crash, a SIGTERM or a dropped connection must never leave a partial ``.jpg`` that
    a resumed run would take for a finished poster. The temp file is removed on any failure.
    """
    with atomic_write(dest, check=partial(_require_image, poster=dest.stem)) as fh:
        for chunk in response.iter_content(chunk_size=64 * 1024):
            fh.write(chunk)


def _remove_stale_parts(images_dir: Path) -> None:
    """Delete temp files a killed earlier run left behind (hidden ``.*.tmp``, or older
    ``.*.part``): only a SIGKILL or power cut can still leave one."""
    for pattern in (".*.tmp", ".*.part"):
        for part in images_dir.glob(pattern):
            part.unlink(missing_ok=True)


# --------------------------------------------------------------------------- labels.csv


def _label_row(movie: Movie) -> dict[str, Any]:
    """The labels.csv row of a movie whose poster is on disk."""
    year = movie.release_date[:4]
    return {
        "poster_id": movie.tmdb_id,
        "imdb_id": movie.imdb_id,
        "tmdb_id": movie.tmdb_id,
        "title": movie.title,
        "year": int(year) if year.isdigit() else "",
        "genres": "|".join(movie.genres),
        "image": f"images/{movie.tmdb_id}.jpg",
        "release_date": movie.release_date,
        "popularity": "" if movie.popularity is None else movie.popularity,
        "vote_average": "" if movie.vote_average is None else movie.vote_average,
        "decade": movie.decade,
    }


def _write_labels(out_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """Write labels.csv atomically (:func:`posterml.io.atomic_write`): never half a file."""
    path = out_dir / "labels.csv"
    with atomic_write(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=LABEL_COLUMNS + EXTRA_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _known_imdb_ids(out_dir: Path) -> dict[int, str]:
    """tmdb_id -> imdb_id from a previous labels.csv, so a resumed run skips those lookups."""
    path = out_dir / "labels.csv"
    if not path.exists():
        return {}
    known: dict[int, str] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                known[int(row["tmdb_id"])] = row.get("imdb_id") or ""
            except (KeyError, TypeError, ValueError):
                continue  # a hand-edited or foreign file: just look those ids up again
    return known


# --------------------------------------------------------------------------- one run


class _Fetcher:
    """One fetch run: the client, where posters go, and the counters."""

    def __init__(self, client: TMDbClient, out_dir: Path, poster_url: str, progress: bool) -> None:
        self.client = client
        self.images_dir = out_dir / "images"
        self.poster_url = poster_url
        self.progress = progress
        self.report = FetchReport(out_dir=out_dir)
        self.known_imdb = _known_imdb_ids(out_dir)

    def _ensure_poster(self, movie: Movie) -> bool:
        """Make sure the poster is on disk; True if it was downloaded now, False if present."""
        dest = self.images_dir / f"{movie.tmdb_id}.jpg"
        if dest.exists() and is_valid_image(dest):
            return False
        url = f"{self.poster_url}{movie.poster_path}"
        what = f"poster {movie.tmdb_id}"
        self.client.get(url, what, partial(_save_body, dest), authenticated=False)
        return True

    def _fetch_movie(self, movie: Movie) -> bool:
        """IMDb id + poster for one movie; False (and recorded) when it failed for good."""
        try:
            if movie.tmdb_id in self.known_imdb:
                movie.imdb_id = self.known_imdb[movie.tmdb_id]
            else:
                movie.imdb_id = imdb_id(self.client, movie.tmdb_id)
            downloaded = self._ensure_poster(movie)
        except TMDbAuthError:
            raise
        except TMDbError as exc:  # its message is already scrubbed
            self.report.n_failed += 1
            self.report.failed_ids.append(movie.tmdb_id)
            write_line(f"failed: tmdb id {movie.tmdb_id}: {exc}")
            return False
        if downloaded:
            self.report.n_downloaded += 1
        else:
            self.report.n_skipped_existing += 1
        return True

    def fetch_decade(self, decade: int, movies: list[Movie]) -> list[dict[str, Any]]:
        """Fetch every movie of one decade, with a progress bar (posters/s, ETA) on stderr."""
        rows = []
        bar = progress_bar(
            desc=f"{decade}s posters", enabled=self.progress, unit="poster", iterable=movies
        )
        with bar:
            for movie in bar:
                if self._fetch_movie(movie):
                    rows.append(_label_row(movie))
        return rows


def fetch_tmdb(
    out_dir: str | os.PathLike[str],
    decades: list[int],
    per_decade: int,
    api_key: str,
    poster_size: str = "w342",
    api_base_url: str | None = None,
    image_base_url: str | None = None,
    timeout: float = 10.0,
    max_retries: int = 5,
    progress: bool = True,
    genres: Sequence[str] | None = None,
) -> FetchReport:
    """Download the ``per_decade`` most popular movies with a poster per decade into a folder.

    With ``genres`` (TMDb names, any case), only movies having any of them are listed: the
    way to grow the genres a dataset lacks. Each movie keeps all its TMDb genres.

    Writes ``out_dir/images/<tmdb_id>.jpg`` and ``out_dir/labels.csv`` (columns
    ``poster_id,imdb_id,tmdb_id,title,year,genres,image`` then
    ``release_date,popularity,vote_average,decade``). Existing, decodable posters are kept, so
    rerunning resumes. ``api_key`` is a v3 API key or a v4 read access token
    (:mod:`posterml.data.tmdb.auth`). ``api_base_url`` (e.g. ``http://127.0.0.1:8000``;
    ``/3`` is appended) and ``image_base_url`` (default ``https://image.tmdb.org/t/p``) point
    at another server, for tests or a proxy. Raises :class:`TMDbAuthError` on a rejected key
    and :class:`TMDbError` when a listing call keeps failing; a single poster that keeps
    failing is only recorded in the report.
    """
    credential = Credential(api_key or "")
    if not credential:
        raise TMDbAuthError("no TMDb API key given: set TMDB_API_KEY or pass --api-key")
    if per_decade < 1:
        raise ValueError(f"per_decade must be at least 1, got {per_decade}")
    wanted = chosen_genres(genres or [])
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(out / "images")
    image_base = (image_base_url or DEFAULT_IMAGE_BASE_URL).rstrip("/")

    with (
        TMDbClient(credential, api_base_url, timeout, max_retries) as client,
        scrubbed_logging(credential),
    ):
        fetcher = _Fetcher(client, out, f"{image_base}/{poster_size}", progress)
        names = genre_names(client)
        with_genres = genre_ids(names, wanted) if wanted else None
        rows: list[dict[str, Any]] = []
        for decade in decades:
            movies = discover_decade(client, decade, per_decade, names, with_genres)
            rows += fetcher.fetch_decade(decade, movies)
            _write_labels(out, rows)  # after each decade, so an interrupted run keeps its work
        if not decades:
            _write_labels(out, rows)
    fetcher.report.n_movies = len(rows)
    return fetcher.report
