"""A small real HTTP server that imitates the parts of TMDb that posterml.data.tmdb uses.

Why a real server rather than mocks: the interesting failures (429 with Retry-After, a 500, a
connection cut in the middle of an image body) happen inside requests/urllib3, and only a real
socket exercises the code paths that have to survive them.

Endpoints: ``/3/genre/movie/list``, ``/3/discover/movie`` (paged, filtered by
``primary_release_date.gte/lte`` and ``with_genres`` (ids joined by ``,`` for AND, ``|`` for
OR, as TMDb reads them), sorted by popularity), ``/3/movie/{id}/external_ids`` and
posters at ``/t/p/{size}/{file}.jpg`` (small JPEGs made with Pillow). Every ``/3/`` call checks
the credential, as TMDb does: the v3 ``api_key`` query parameter, or a v4 read access token as
``Authorization: Bearer ...``; a wrong or missing one gets TMDb's 401 JSON.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

# TMDb's real movie genre list (ids and names).
GENRES = {
    28: "Action",
    12: "Adventure",
    16: "Animation",
    35: "Comedy",
    80: "Crime",
    99: "Documentary",
    18: "Drama",
    10751: "Family",
    14: "Fantasy",
    36: "History",
    27: "Horror",
    10402: "Music",
    9648: "Mystery",
    10749: "Romance",
    878: "Science Fiction",
    10770: "TV Movie",
    53: "Thriller",
    10752: "War",
    37: "Western",
}

ENDPOINTS = ("genres", "discover", "external_ids", "image")


@dataclass
class FakeMovie:
    """One movie the fake TMDb knows about."""

    id: int
    title: str
    release_date: str
    genre_ids: list[int]
    popularity: float
    poster_path: str | None = None
    imdb_id: str | None = None
    vote_average: float = 6.5

    def __post_init__(self) -> None:
        if self.poster_path is None:
            self.poster_path = f"/poster{self.id}.jpg"
        if self.imdb_id is None:
            self.imdb_id = f"tt{self.id:07d}"

    def discover_result(self) -> dict[str, Any]:
        """The movie as it appears in a Discover results list."""
        return {
            "id": self.id,
            "title": self.title,
            "original_title": self.title,
            "release_date": self.release_date,
            "genre_ids": self.genre_ids,
            "popularity": self.popularity,
            "poster_path": self.poster_path,
            "vote_average": self.vote_average,
            "adult": False,
        }


@dataclass
class Fault:
    """What to do instead of a normal answer: an HTTP error status, cut the body short, send
    half the body and hang until the server's ``release`` event is set, or answer 200 with a
    body that is not JSON."""

    status: int | None = None
    retry_after: str | None = None
    drop: bool = False
    stall: bool = False
    garbage: bool = False


def default_movies() -> list[FakeMovie]:
    """Five 1970s movies (one with 7 genres, one without poster, one without genres) and
    four 2010s movies: enough to test paging, filters, the 5-genre cap and the decade split."""
    return [
        FakeMovie(101, "Star Voyage", "1977-05-25", [12, 28, 878], 90.0),
        FakeMovie(102, "Seven Genres", "1979-06-01", [28, 12, 16, 35, 80, 18, 53], 80.0),
        FakeMovie(103, "Posterless", "1975-01-01", [18], 70.0, poster_path=""),
        FakeMovie(104, "Genreless", "1974-01-01", [], 60.0),
        FakeMovie(105, "Quiet Drama", "1971-02-03", [18], 50.0),
        FakeMovie(106, "Night Horror", "1978-10-31", [27, 53], 40.0),
        FakeMovie(201, "Dream Heist", "2010-07-16", [28, 878, 12], 95.0),
        FakeMovie(202, "Space Drift", "2014-11-05", [12, 18, 878], 85.0),
        FakeMovie(203, "City Laughs", "2019-12-31", [35], 75.0),
        FakeMovie(204, "Old Town Crime", "2012-03-01", [80, 18], 65.0),
        FakeMovie(301, "Out of Range", "1969-12-31", [18], 99.0),
    ]


def make_jpeg(seed: int, size: tuple[int, int] = (40, 60)) -> bytes:
    """A small, real, decodable JPEG whose colour depends on ``seed``."""
    colour = (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


@dataclass
class FakeTMDbState:
    """Server state shared by handler threads: data, faults and hit counters."""

    api_key: str
    movies: list[FakeMovie]
    page_size: int = 3
    read_token: str | None = None
    hits: Counter[str] = field(default_factory=Counter)
    requests: list[str] = field(default_factory=list)
    # (path, Authorization header or None) of every request, to check where a token went.
    authorizations: list[tuple[str, str | None]] = field(default_factory=list)
    faults: dict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def next_fault(self, endpoint: str) -> Fault | None:
        """Count a hit on ``endpoint`` and pop the next queued fault for it, if any."""
        with self.lock:
            self.hits[endpoint] += 1
            queue = self.faults[endpoint]
            return queue.popleft() if queue else None


def _has_genres(movie: FakeMovie, with_genres: str) -> bool:
    """TMDb's ``with_genres``: ids joined by ``,`` must all be present, by ``|`` any of them
    (one separator per query; empty matches every movie)."""
    if not with_genres:
        return True
    if "|" in with_genres:
        return any(int(g) in movie.genre_ids for g in with_genres.split("|"))
    return all(int(g) in movie.genre_ids for g in with_genres.split(","))


class _Handler(BaseHTTPRequestHandler):
    """Routes GET requests to the fake endpoints; HTTP/1.0, so one request per connection."""

    server: FakeTMDbServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr line (it would print the api_key)."""

    def do_GET(self) -> None:  # stdlib naming
        state = self.server.state
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with state.lock:
            state.requests.append(self.path)
            state.authorizations.append((self.path, self.headers.get("Authorization")))
        endpoint, match = self._route(url.path)
        if endpoint is None:
            self._send_json(404, {"status_code": 34, "status_message": "Not found"})
            return
        if endpoint != "image" and not self._authorized(query):
            self._send_json(401, {"status_code": 7, "status_message": "Invalid API key"})
            return
        fault = state.next_fault(endpoint)
        if fault and fault.status:
            self._send_error(fault)
            return
        if fault and fault.garbage:
            self._send_bytes(200, b"<html>maintenance</html>", "text/html")
            return
        handler = getattr(self, f"_serve_{endpoint}")
        handler(query, match, fault)

    def _authorized(self, query: dict[str, str]) -> bool:
        """The v3 key as ``api_key``, or the read access token as a Bearer header."""
        state = self.server.state
        if query.get("api_key") == state.api_key:
            return True
        bearer = self.headers.get("Authorization")
        return state.read_token is not None and bearer == f"Bearer {state.read_token}"

    @staticmethod
    def _route(path: str) -> tuple[str | None, re.Match[str] | None]:
        routes = {
            "genres": r"/3/genre/movie/list",
            "discover": r"/3/discover/movie",
            "external_ids": r"/3/movie/(?P<id>\d+)/external_ids",
            "image": r"/t/p/(?P<size>\w+)/(?P<file>[\w.-]+\.jpg)",
        }
        for name, pattern in routes.items():
            match = re.fullmatch(pattern, path)
            if match:
                return name, match
        return None, None

    def _send_bytes(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: dict[str, Any], **headers: str) -> None:
        body = json.dumps(payload).encode()
        self._send_bytes(status, body, "application/json;charset=utf-8", **headers)

    def _send_error(self, fault: Fault) -> None:
        headers = {"Retry_After": fault.retry_after} if fault.retry_after is not None else {}
        payload = {"status_code": 25 if fault.status == 429 else 11, "status_message": "fault"}
        self._send_json(fault.status or 500, payload, **headers)

    def _serve_genres(self, query: dict[str, str], match: Any, fault: Fault | None) -> None:
        genres = [{"id": gid, "name": name} for gid, name in GENRES.items()]
        self._send_json(200, {"genres": genres})

    def _serve_discover(self, query: dict[str, str], match: Any, fault: Fault | None) -> None:
        state = self.server.state
        gte = query.get("primary_release_date.gte", "0000-00-00")
        lte = query.get("primary_release_date.lte", "9999-99-99")
        chosen = [
            m
            for m in state.movies
            if gte <= m.release_date <= lte and _has_genres(m, query.get("with_genres", ""))
        ]
        chosen.sort(key=lambda m: m.popularity, reverse=True)
        page = int(query.get("page", "1"))
        size = state.page_size
        total_pages = max(1, -(-len(chosen) // size))
        results = [m.discover_result() for m in chosen[(page - 1) * size : page * size]]
        payload = {
            "page": page,
            "results": results,
            "total_pages": total_pages,
            "total_results": len(chosen),
        }
        self._send_json(200, payload)

    def _movie(self, tmdb_id: int) -> FakeMovie | None:
        return next((m for m in self.server.state.movies if m.id == tmdb_id), None)

    def _serve_external_ids(self, query: dict[str, str], match: Any, fault: Fault | None) -> None:
        movie = self._movie(int(match["id"]))
        if movie is None:
            self._send_json(404, {"status_code": 34, "status_message": "Not found"})
            return
        self._send_json(200, {"id": movie.id, "imdb_id": movie.imdb_id, "wikidata_id": None})

    def _serve_image(self, query: dict[str, str], match: Any, fault: Fault | None) -> None:
        name = "/" + match["file"]
        movie = next((m for m in self.server.state.movies if m.poster_path == name), None)
        if movie is None:
            self._send_bytes(404, b"not found", "text/plain")
            return
        body = make_jpeg(movie.id)
        if fault and (fault.drop or fault.stall):
            self._send_half_and_drop(body, stall=fault.stall)
            return
        self._send_bytes(200, body, "image/jpeg")

    def _send_half_and_drop(self, body: bytes, stall: bool = False) -> None:
        """Announce the full length, send half of it, then cut the connection (after waiting
        for ``release`` when ``stall``: the client sits mid-download meanwhile)."""
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        if stall:
            self.server.state.release.wait(timeout=120)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class FakeTMDbServer(ThreadingHTTPServer):
    """The fake TMDb on 127.0.0.1 and a free port; use as a context manager."""

    daemon_threads = True

    def __init__(
        self,
        api_key: str,
        movies: list[FakeMovie] | None = None,
        page_size: int = 3,
        read_token: str | None = None,
    ):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = FakeTMDbState(
            api_key=api_key,
            movies=movies or default_movies(),
            page_size=page_size,
            read_token=read_token,
        )
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """Root to pass as ``api_base_url`` (``/3`` is appended by the client)."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def image_base_url(self) -> str:
        """Root to pass as ``image_base_url`` (the client appends ``/{size}{poster_path}``)."""
        return f"{self.base_url}/t/p"

    @property
    def hits(self) -> Counter[str]:
        """Requests served per endpoint (faulty ones included)."""
        return self.state.hits

    def add_faults(self, endpoint: str, *faults: Fault) -> None:
        """Answer the next calls of ``endpoint`` with ``faults``, in order."""
        assert endpoint in ENDPOINTS, endpoint
        with self.state.lock:
            self.state.faults[endpoint].extend(faults)

    def fail(self, endpoint: str, status: int, times: int = 1, retry_after: str | None = None):
        """Answer the next ``times`` calls of ``endpoint`` with HTTP ``status``."""
        self.add_faults(endpoint, *[Fault(status=status, retry_after=retry_after)] * times)

    def drop_image(self, times: int = 1) -> None:
        """Cut the next ``times`` image responses in the middle of the body."""
        self.add_faults("image", *[Fault(drop=True)] * times)

    def stall_image(self) -> None:
        """Hang the next image response in the middle of its body until ``__exit__``."""
        self.add_faults("image", Fault(stall=True))

    def __enter__(self) -> FakeTMDbServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.release.set()
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
