"""Which movies to fetch: TMDb's Discover listing per decade, genre names and IMDb ids.

For a decade we page through ``/discover/movie`` (most popular first) until enough movies
with a poster and at least one genre are found, mapping genre ids to names with
``/genre/movie/list``. ``/movie/{id}/external_ids`` gives each one's IMDb id.

Chosen genres narrow the listing with Discover's ``with_genres``: TMDb reads ids joined by
``,`` as AND and by ``|`` as OR. A dealer who asks for Western and War wants more of
either (a Western without a war in it is just what he lacks), so they are joined by ``|``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from posterml.data.tmdb.client import TMDbClient, TMDbError
from posterml.genres import GENRES, canonical_genre, did_you_mean

MAX_GENRES = 5
# TMDb serves at most 500 pages of Discover results, whatever total_pages says.
MAX_DISCOVER_PAGES = 500


@dataclass
class Movie:
    """One Discover result we intend to keep, with genres already mapped to names."""

    tmdb_id: int
    title: str
    release_date: str
    poster_path: str
    genres: list[str]
    popularity: float | None
    vote_average: float | None
    decade: int
    imdb_id: str = ""


def genre_names(client: TMDbClient) -> dict[int, str]:
    """Genre id -> name from TMDb's movie genre list (one call per run)."""
    response = client.get_json("genre/movie/list", "genre list")
    return {int(g["id"]): str(g["name"]) for g in response.get("genres", [])}


def decade_bounds(decade: int) -> tuple[str, str]:
    """1970 -> ('1970-01-01', '1979-12-31')."""
    return f"{decade:04d}-01-01", f"{decade + 9:04d}-12-31"


def chosen_genres(text: str | Sequence[str]) -> list[str]:
    """TMDb genre names from ``"western, war"`` (or a list of names), in TMDb's spelling.

    Any case and spacing is accepted; an unknown name is a ``ValueError`` naming the likely
    genre and TMDb's list, so a typo never fetches every genre instead of the one asked for.
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    chosen: list[str] = []
    for part in (p for p in parts if p.strip()):
        genre = canonical_genre(part)
        if genre is None:
            raise ValueError(
                f"unknown genre {part.strip()!r}{did_you_mean(part)}; TMDb's genres are "
                + ", ".join(GENRES)
            )
        if genre not in chosen:
            chosen.append(genre)
    return chosen


def genre_ids(names: dict[int, str], chosen: list[str]) -> list[int]:
    """TMDb's ids of the ``chosen`` genre names (``genre_names``' map read backwards); a name
    TMDb's list lacks is a ``TMDbError``, never silently a wider listing."""
    by_name = {name: gid for gid, name in names.items()}
    missing = [name for name in chosen if name not in by_name]
    if missing:
        raise TMDbError(f"TMDb's genre list has no {', '.join(map(repr, missing))}")
    return [by_name[name] for name in chosen]


def _discover_page(
    client: TMDbClient, decade: int, page: int, with_genres: list[int] | None = None
) -> dict[str, Any]:
    """One page of the decade's movies, most popular first; with ``with_genres``, only movies
    having any of those genre ids."""
    gte, lte = decade_bounds(decade)
    query: dict[str, Any] = {
        "primary_release_date.gte": gte,
        "primary_release_date.lte": lte,
        "sort_by": "popularity.desc",
        "include_adult": "false",
        "include_video": "false",
        "page": page,
    }
    if with_genres:
        query["with_genres"] = "|".join(str(g) for g in with_genres)  # | is OR, "," AND
    return client.get_json("discover/movie", f"discover {decade}s p{page}", **query)


def _to_movie(result: dict[str, Any], names: dict[int, str], decade: int) -> Movie | None:
    """A Discover result as a :class:`Movie`, or None when it has no poster or no genres."""
    poster_path = result.get("poster_path")
    genres = [names[g] for g in result.get("genre_ids") or [] if g in names]
    if not poster_path or not genres:
        return None
    return Movie(
        tmdb_id=int(result["id"]),
        title=str(result.get("title") or result.get("original_title") or ""),
        release_date=str(result.get("release_date") or ""),
        poster_path=str(poster_path),
        genres=genres[:MAX_GENRES],  # TMDb's order; extra genres are rarely meaningful
        popularity=result.get("popularity"),
        vote_average=result.get("vote_average"),
        decade=decade,
    )


def discover_decade(
    client: TMDbClient,
    decade: int,
    per_decade: int,
    names: dict[int, str],
    with_genres: list[int] | None = None,
) -> list[Movie]:
    """Page through Discover until ``per_decade`` usable movies are found or pages run out;
    with ``with_genres`` (ids), only movies having any of them."""
    movies: list[Movie] = []
    seen: set[int] = set()  # popularity shifts between pages can repeat a movie
    page, total_pages = 1, 1
    while len(movies) < per_decade and page <= min(total_pages, MAX_DISCOVER_PAGES):
        response = _discover_page(client, decade, page, with_genres)
        total_pages = int(response.get("total_pages") or 0)
        for result in response.get("results", []):
            movie = _to_movie(result, names, decade)
            if movie and movie.tmdb_id not in seen:
                seen.add(movie.tmdb_id)
                movies.append(movie)
            if len(movies) == per_decade:
                break
        page += 1
    return movies


def imdb_id(client: TMDbClient, tmdb_id: int) -> str:
    """The movie's IMDb id (``tt...``), or '' when TMDb has none."""
    response = client.get_json(f"movie/{tmdb_id}/external_ids", f"external ids of {tmdb_id}")
    return str(response.get("imdb_id") or "")
