"""Build a folder dataset of movie posters and genres from TMDb, through tmdbsimple.

For each requested decade we ask TMDb's Discover endpoint for the most popular movies released
in it, map their genre ids to names, look up each IMDb id, and download the posters. The result
is ``out_dir/labels.csv`` plus ``out_dir/images/<tmdb_id>.jpg``: the same folder layout the rest
of posterml reads.

Why the care around it:

* TMDb rate-limits (HTTP 429) and occasionally fails (5xx, dropped connections), so every call
  is retried with exponential backoff, honouring ``Retry-After``.
* The v3 API key travels as ``?api_key=...`` in every URL, and requests/tmdbsimple/urllib3 put
  that URL into exception messages and debug logs. Everything we raise, log or print goes
  through :func:`scrub_secrets`, and urllib3's loggers get a scrubbing filter while we run.
* Runs are long and get interrupted: posters are written atomically
  (:func:`posterml.io.atomic_write`), existing posters are skipped, and ``labels.csv`` is
  rewritten atomically after every decade, so a rerun resumes where the last one stopped.
  Ctrl-C and SIGTERM unwind the run: temp files are removed and the MLflow run ends KILLED.
"""

from __future__ import annotations

import argparse
import csv
import email.utils
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import requests
import tmdbsimple
from tqdm import tqdm

from posterml.data.images import ImageDecodeError, load_image
from posterml.io import Terminated, atomic_write, run_interruptible

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_IMAGE_BASE_URL = "https://image.tmdb.org/t/p"
LABEL_COLUMNS = ["poster_id", "imdb_id", "tmdb_id", "title", "year", "genres", "image"]
EXTRA_COLUMNS = ["release_date", "popularity", "vote_average", "decade"]
MAX_GENRES = 5
# TMDb serves at most 500 pages of Discover results, whatever total_pages says.
MAX_DISCOVER_PAGES = 500
AUTH_ERROR_MESSAGE = "TMDb rejected the API key (HTTP 401): check TMDB_API_KEY"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})

_API_KEY_IN_TEXT = re.compile(r"(api_key=)[^&\s'\";,<>)]*", re.IGNORECASE)


class TMDbError(RuntimeError):
    """A TMDb call failed for good (after retries). The message never contains the API key."""


class TMDbAuthError(TMDbError):
    """TMDb answered 401: the API key is wrong; retrying cannot help."""


class PosterError(TMDbError):
    """A poster could not be downloaded, or the bytes are not a decodable image."""


@dataclass
class FetchReport:
    """What :func:`fetch_tmdb` did; ``failed_ids`` are TMDb ids whose poster is missing."""

    out_dir: Path
    n_movies: int = 0
    n_downloaded: int = 0
    n_skipped_existing: int = 0
    n_failed: int = 0
    failed_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _RetryPolicy:
    """How often and how long to wait between attempts of one call."""

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    # Honour Retry-After, but never let a bogus header stall the run for hours.
    retry_after_max: float = 120.0


@dataclass
class _Movie:
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


# --------------------------------------------------------------------------- secret hygiene


def scrub_secrets(text: str, api_key: str | None = None) -> str:
    """Return ``text`` with any ``api_key=...`` query value and the literal key replaced.

    Why: requests, urllib3 and tmdbsimple put the full request URL (key included) into
    exception messages and logs; nothing derived from them may reach a log, terminal or MLflow.
    """
    text = _API_KEY_IN_TEXT.sub(r"\1***", text)
    if api_key:
        text = text.replace(api_key, "***")
        quoted = requests.utils.quote(api_key, safe="")
        if quoted != api_key:
            text = text.replace(quoted, "***")
    return text


class _ScrubFilter(logging.Filter):
    """Logging filter that scrubs the API key out of a record before any handler sees it."""

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self._api_key = api_key

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub_secrets(message, self._api_key)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _third_party_loggers() -> list[logging.Logger]:
    """Loggers that may log request URLs: urllib3's (debug request lines) and requests'."""
    names = [
        name
        for name in logging.Logger.manager.loggerDict
        if name.split(".")[0] in {"urllib3", "requests"}
    ]
    names += ["urllib3.connectionpool", "urllib3.util.retry", __name__]
    return [logging.getLogger(name) for name in sorted(set(names))]


@contextmanager
def _scrubbed_logging(api_key: str) -> Iterator[None]:
    """Attach a scrubbing filter to URL-logging loggers for the duration of a fetch."""
    log_filter = _ScrubFilter(api_key)
    loggers = _third_party_loggers()
    for lg in loggers:
        lg.addFilter(log_filter)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(log_filter)


# --------------------------------------------------------------------------- tmdbsimple setup


@contextmanager
def _tmdbsimple_configured(
    api_key: str, session: requests.Session, timeout: float
) -> Iterator[None]:
    """Set tmdbsimple's module globals (key, session, timeout) and restore them afterwards.

    Why restore: they are process-wide, and leaving our key in them would leak it into any
    later, unrelated tmdbsimple use in the same process.
    """
    saved = (tmdbsimple.API_KEY, tmdbsimple.REQUESTS_SESSION, tmdbsimple.REQUESTS_TIMEOUT)
    tmdbsimple.API_KEY = api_key
    tmdbsimple.REQUESTS_SESSION = session
    tmdbsimple.REQUESTS_TIMEOUT = timeout
    try:
        yield
    finally:
        tmdbsimple.API_KEY, tmdbsimple.REQUESTS_SESSION, tmdbsimple.REQUESTS_TIMEOUT = saved


def _api_base_uri(api_base_url: str | None) -> str | None:
    """``https://host`` -> ``https://host/3`` (tmdbsimple's version suffix); None keeps TMDb's."""
    if not api_base_url:
        return None
    base = api_base_url.rstrip("/")
    version = f"/{tmdbsimple.API_VERSION}"
    return base if base.endswith(version) else base + version


def _make(cls: Callable[..., T], base_uri: str | None, *args: Any) -> T:
    """Instantiate a tmdbsimple resource, pointed at ``base_uri`` when given.

    tmdbsimple hard-codes ``https://api.themoviedb.org`` in ``TMDB.__init__`` (there is no
    module-level setting; ``BASE_PATH`` is the per-resource path such as ``discover``), so the
    per-instance ``base_uri`` attribute it builds URLs from is the one supported place to change
    it. Being per instance, nothing global needs restoring.
    """
    obj = cls(*args)
    if base_uri:
        obj.base_uri = base_uri
    return obj


# --------------------------------------------------------------------------- retries


def _retry_after_seconds(response: requests.Response | None) -> float | None:
    """Parse ``Retry-After`` (seconds or an HTTP date); None when absent or unreadable."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _backoff(attempt: int, policy: _RetryPolicy, response: requests.Response | None) -> float:
    """Seconds to wait before retry number ``attempt + 1``: Retry-After if given, else 2^n."""
    retry_after = _retry_after_seconds(response)
    if retry_after is not None:
        return min(retry_after, policy.retry_after_max)
    return min(policy.backoff_base * 2**attempt, policy.backoff_max)


def _status_of(exc: requests.HTTPError) -> int | None:
    """HTTP status carried by a requests HTTPError (None if it has no response)."""
    return exc.response.status_code if exc.response is not None else None


# Network-level failures worth another try: connection refused/reset, timeouts, a body cut short.
_TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def _call_with_retries(fn: Callable[[], T], what: str, policy: _RetryPolicy, api_key: str) -> T:
    """Run ``fn`` retrying 429/5xx and network errors; raise scrubbed TMDb errors otherwise.

    401 raises :class:`TMDbAuthError` at once. Exceptions are re-raised ``from None`` so the
    original (URL-with-key) exception is not printed as the cause in a traceback.
    """
    for attempt in range(policy.max_retries + 1):
        response = None
        try:
            return fn()
        except requests.HTTPError as exc:
            status = _status_of(exc)
            if status == 401:
                raise TMDbAuthError(AUTH_ERROR_MESSAGE) from None
            reason = scrub_secrets(str(exc), api_key)
            if status not in RETRYABLE_STATUS or attempt == policy.max_retries:
                raise TMDbError(f"{what} failed: {reason}") from None
            response = exc.response
        except _TRANSIENT_ERRORS as exc:
            reason = scrub_secrets(f"{type(exc).__name__}: {exc}", api_key)
            if attempt == policy.max_retries:
                raise TMDbError(f"{what} failed after {attempt + 1} attempts: {reason}") from None
        delay = _backoff(attempt, policy, response)
        logger.warning(
            "%s: %s; retry %d/%d in %.1fs", what, reason, attempt + 1, policy.max_retries, delay
        )
        time.sleep(delay)
    raise AssertionError("unreachable")  # the loop either returns or raises


# --------------------------------------------------------------------------- TMDb calls


def _genre_names(base_uri: str | None, call: Callable[..., Any]) -> dict[int, str]:
    """Genre id -> name from TMDb's movie genre list (one call per run)."""
    genres = _make(tmdbsimple.Genres, base_uri)
    response = call(genres.movie_list, "genre list")
    return {int(g["id"]): str(g["name"]) for g in response.get("genres", [])}


def _decade_bounds(decade: int) -> tuple[str, str]:
    """1970 -> ('1970-01-01', '1979-12-31')."""
    return f"{decade:04d}-01-01", f"{decade + 9:04d}-12-31"


def _discover_page(base_uri: str | None, decade: int, page: int) -> dict[str, Any]:
    """One page of the decade's movies, most popular first."""
    gte, lte = _decade_bounds(decade)
    params = {
        "primary_release_date.gte": gte,
        "primary_release_date.lte": lte,
        "sort_by": "popularity.desc",
        "include_adult": False,
        "include_video": False,
        "page": page,
    }
    return _make(tmdbsimple.Discover, base_uri).movie(**params)


def _to_movie(result: dict[str, Any], genre_names: dict[int, str], decade: int) -> _Movie | None:
    """A Discover result as a :class:`_Movie`, or None when it has no poster or no genres."""
    poster_path = result.get("poster_path")
    names = [genre_names[g] for g in result.get("genre_ids") or [] if g in genre_names]
    if not poster_path or not names:
        return None
    return _Movie(
        tmdb_id=int(result["id"]),
        title=str(result.get("title") or result.get("original_title") or ""),
        release_date=str(result.get("release_date") or ""),
        poster_path=str(poster_path),
        genres=names[:MAX_GENRES],  # TMDb's order; extra genres are rarely meaningful
        popularity=result.get("popularity"),
        vote_average=result.get("vote_average"),
        decade=decade,
    )


def _discover_decade(
    decade: int,
    per_decade: int,
    genre_names: dict[int, str],
    base_uri: str | None,
    call: Callable[..., Any],
) -> list[_Movie]:
    """Page through Discover until ``per_decade`` usable movies are found or pages run out."""
    movies: list[_Movie] = []
    seen: set[int] = set()  # popularity shifts between pages can repeat a movie
    page, total_pages = 1, 1
    while len(movies) < per_decade and page <= min(total_pages, MAX_DISCOVER_PAGES):
        response = call(
            partial(_discover_page, base_uri, decade, page), f"discover {decade}s p{page}"
        )
        total_pages = int(response.get("total_pages") or 0)
        for result in response.get("results", []):
            movie = _to_movie(result, genre_names, decade)
            if movie and movie.tmdb_id not in seen:
                seen.add(movie.tmdb_id)
                movies.append(movie)
            if len(movies) == per_decade:
                break
        page += 1
    return movies


def _imdb_id(tmdb_id: int, base_uri: str | None, call: Callable[..., Any]) -> str:
    """The movie's IMDb id (``tt...``), or '' when TMDb has none."""
    movie = _make(tmdbsimple.Movies, base_uri, tmdb_id)
    response = call(movie.external_ids, f"external ids of {tmdb_id}")
    return str(response.get("imdb_id") or "")


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


def _download_once(session: requests.Session, url: str, dest: Path, timeout: float) -> None:
    """Stream ``url`` into a temp file beside ``dest``, verify it, then rename it into place.

    Why: a crash, a SIGTERM or a dropped connection must never leave a partial ``.jpg`` that a
    resumed run would take for a finished poster. The temp file is removed on any failure.
    """
    check = partial(_require_image, poster=dest.stem)
    with (
        atomic_write(dest, check=check) as fh,
        session.get(url, stream=True, timeout=timeout) as resp,
    ):
        resp.raise_for_status()
        for chunk in resp.iter_content(chunk_size=64 * 1024):
            fh.write(chunk)


def _remove_stale_parts(images_dir: Path) -> None:
    """Delete temp files a killed earlier run left behind (hidden ``.*.tmp``, or older
    ``.*.part``): only a SIGKILL or power cut can still leave one."""
    for pattern in (".*.tmp", ".*.part"):
        for part in images_dir.glob(pattern):
            part.unlink(missing_ok=True)


# --------------------------------------------------------------------------- labels.csv


def _label_row(movie: _Movie) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- public API


class _Fetcher:
    """One fetch run: shared session, retry policy and counters (keeps the functions small)."""

    def __init__(
        self,
        out_dir: Path,
        api_key: str,
        session: requests.Session,
        poster_url: str,
        base_uri: str | None,
        timeout: float,
        policy: _RetryPolicy,
        progress: bool,
    ) -> None:
        self.out_dir = out_dir
        self.images_dir = out_dir / "images"
        self.api_key = api_key
        self.session = session
        self.poster_url = poster_url
        self.base_uri = base_uri
        self.timeout = timeout
        self.policy = policy
        self.progress = progress
        self.report = FetchReport(out_dir=out_dir)
        self.known_imdb = _known_imdb_ids(out_dir)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()`` with this run's retry policy and key scrubbing."""
        return _call_with_retries(fn, what, self.policy, self.api_key)

    def _ensure_poster(self, movie: _Movie) -> bool:
        """Make sure the poster is on disk; True if it was downloaded now, False if present."""
        dest = self.images_dir / f"{movie.tmdb_id}.jpg"
        if dest.exists() and is_valid_image(dest):
            return False
        url = f"{self.poster_url}{movie.poster_path}"
        download = partial(_download_once, self.session, url, dest, self.timeout)
        self.call(download, f"poster {movie.tmdb_id}")
        return True

    def _fetch_movie(self, movie: _Movie) -> bool:
        """IMDb id + poster for one movie; False (and recorded) when it failed for good."""
        try:
            if movie.tmdb_id in self.known_imdb:
                movie.imdb_id = self.known_imdb[movie.tmdb_id]
            else:
                movie.imdb_id = _imdb_id(movie.tmdb_id, self.base_uri, self.call)
            downloaded = self._ensure_poster(movie)
        except TMDbAuthError:
            raise
        except TMDbError as exc:
            self.report.n_failed += 1
            self.report.failed_ids.append(movie.tmdb_id)
            tqdm.write(
                f"failed: tmdb id {movie.tmdb_id}: {scrub_secrets(str(exc), self.api_key)}",
                file=sys.stderr,
            )
            return False
        if downloaded:
            self.report.n_downloaded += 1
        else:
            self.report.n_skipped_existing += 1
        return True

    def fetch_decade(self, decade: int, movies: list[_Movie]) -> list[dict[str, Any]]:
        """Fetch every movie of one decade, with a tqdm bar (posters/s, ETA) on stderr."""
        rows = []
        bar = tqdm(
            movies,
            desc=f"{decade}s posters",
            unit="poster",
            file=sys.stderr,
            disable=not self.progress,
            dynamic_ncols=True,
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
) -> FetchReport:
    """Download the ``per_decade`` most popular movies with a poster per decade into a folder.

    Writes ``out_dir/images/<tmdb_id>.jpg`` and ``out_dir/labels.csv`` (columns
    ``poster_id,imdb_id,tmdb_id,title,year,genres,image`` then
    ``release_date,popularity,vote_average,decade``). Existing, decodable posters are kept, so
    rerunning resumes. ``api_base_url`` (e.g. ``http://127.0.0.1:8000``; ``/3`` is appended)
    and ``image_base_url`` (default ``https://image.tmdb.org/t/p``) point at another server,
    for tests or a proxy. Raises :class:`TMDbAuthError` on a rejected key and
    :class:`TMDbError` when a listing call keeps failing; a single poster that keeps failing is
    only recorded in the report. Not thread-safe: tmdbsimple is configured through module
    globals, which are restored on return.
    """
    api_key = (api_key or "").strip()
    if not api_key:
        raise TMDbAuthError("no TMDb API key given: set TMDB_API_KEY or pass --api-key")
    if per_decade < 1:
        raise ValueError("per_decade must be at least 1")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(out / "images")
    image_base = (image_base_url or DEFAULT_IMAGE_BASE_URL).rstrip("/")

    with (
        requests.Session() as session,
        _scrubbed_logging(api_key),
        _tmdbsimple_configured(api_key, session, timeout),
    ):
        fetcher = _Fetcher(
            out_dir=out,
            api_key=api_key,
            session=session,
            poster_url=f"{image_base}/{poster_size}",
            base_uri=_api_base_uri(api_base_url),
            timeout=timeout,
            policy=_RetryPolicy(max_retries=max_retries),
            progress=progress,
        )
        genre_names = _genre_names(fetcher.base_uri, fetcher.call)
        rows: list[dict[str, Any]] = []
        for decade in decades:
            movies = _discover_decade(
                decade, per_decade, genre_names, fetcher.base_uri, fetcher.call
            )
            rows += fetcher.fetch_decade(decade, movies)
            _write_labels(out, rows)  # after each decade, so an interrupted run keeps its work
        if not decades:
            _write_labels(out, rows)
    fetcher.report.n_movies = len(rows)
    return fetcher.report


# --------------------------------------------------------------------------- CLI


def _decade_list(text: str) -> list[int]:
    """argparse type: '1970,2010' -> [1970, 2010]; each must be a year ending in 0."""
    try:
        decades = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated years, got {text!r}") from None
    if not decades or any(d % 10 for d in decades):
        raise argparse.ArgumentTypeError(f"decades must be years ending in 0, got {text!r}")
    return decades


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for ``fetch_tmdb`` (MLproject entry point and ``posterml`` CLI)."""
    parser = argparse.ArgumentParser(
        prog="fetch_tmdb",
        description="Download TMDb posters + genres per decade into a folder dataset "
        "(labels.csv + images/), tracked as an MLflow run.",
    )
    parser.add_argument("--out", default="data/tmdb", help="output folder (default: data/tmdb)")
    parser.add_argument(
        "--decades", type=_decade_list, default=[1970, 2010], help="comma list (default 1970,2010)"
    )
    parser.add_argument("--per-decade", type=int, default=100, help="movies per decade (100)")
    parser.add_argument("--poster-size", default="w342", help="TMDb image size (default w342)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="TMDb v3 API key; prefer the TMDB_API_KEY environment variable (argv is visible "
        "to other users of the machine)",
    )
    parser.add_argument("--api-base-url", default=None, help="TMDb API root (tests, proxies)")
    parser.add_argument("--image-base-url", default=None, help="poster root (tests, proxies)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (10)")
    parser.add_argument("--max-retries", type=int, default=5, help="retries per call (5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _run_params(args: argparse.Namespace, api_key: str) -> dict[str, str]:
    """MLflow params: every flag except the key (scrubbed anyway, in case a URL embeds it)."""
    params = {k: v for k, v in vars(args).items() if k != "api_key"}
    params["decades"] = ",".join(str(d) for d in args.decades)
    return {k: scrub_secrets(str(v), api_key) for k, v in params.items()}


def _log_report(report: FetchReport, labels: Path) -> None:
    """Metrics, labels.csv and a small JSON report (with failed ids) on the active run."""
    import mlflow

    mlflow.log_metrics(
        {
            "n_movies": report.n_movies,
            "n_downloaded": report.n_downloaded,
            "n_skipped_existing": report.n_skipped_existing,
            "n_failed": report.n_failed,
        }
    )
    if labels.exists():
        mlflow.log_artifact(str(labels))
    summary = asdict(report) | {"out_dir": str(report.out_dir)}
    mlflow.log_text(json.dumps(summary, indent=2), "fetch_report.json")


def cli_main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, fetch inside an MLflow run (tag ``dataset=tmdb``), return an exit code.

    0 on success (individual failed posters are reported, not fatal), 1 when TMDb fails or
    rejects the key, 2 when no key is given, 130/143 after Ctrl-C/SIGTERM (the run is then
    marked KILLED and no temp file is left).
    """
    return run_interruptible("fetch_tmdb", partial(_cli_main, argv))


def _cli_main(argv: Sequence[str] | None) -> int:
    import mlflow

    from posterml.tracking import configure_tracking

    args = build_parser().parse_args(argv)
    api_key = (args.api_key or os.environ.get("TMDB_API_KEY") or "").strip()
    if not api_key:
        print("error: no TMDb API key: set TMDB_API_KEY or pass --api-key", file=sys.stderr)
        return 2

    configure_tracking()
    status = "FAILED"
    mlflow.start_run(run_name="fetch_tmdb", tags={"dataset": "tmdb"})
    try:
        mlflow.log_params(_run_params(args, api_key))
        report = fetch_tmdb(
            out_dir=args.out,
            decades=args.decades,
            per_decade=args.per_decade,
            api_key=api_key,
            poster_size=args.poster_size,
            api_base_url=args.api_base_url,
            image_base_url=args.image_base_url,
            timeout=args.timeout,
            max_retries=args.max_retries,
            progress=not args.no_progress,
        )
        _log_report(report, Path(args.out) / "labels.csv")
        status = "FINISHED"
    except TMDbError as exc:
        message = scrub_secrets(str(exc), api_key)
        mlflow.set_tag("error", message)
        print(f"error: {message}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated):
        status = "KILLED"
        raise
    finally:
        mlflow.end_run(status=status)
    print(
        f"{report.n_movies} movies in {report.out_dir / 'labels.csv'}: "
        f"{report.n_downloaded} downloaded, {report.n_skipped_existing} already present, "
        f"{report.n_failed} failed{' ' + str(report.failed_ids) if report.failed_ids else ''}"
    )
    return 0
