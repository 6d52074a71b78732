"""Tests for posterml.data.tmdb against a real local HTTP server imitating TMDb.

No mocks: requests and urllib3 run for real, so retries, dropped connections and secret
scrubbing are exercised on the code paths a real TMDb outage would take.
"""

from __future__ import annotations

import csv
import logging
import os
import signal
import socket
import stat
import sys
import time
from pathlib import Path

import pytest
from fake_tmdb import FakeMovie, FakeTMDbServer, Fault
from helpers import interrupt_when
from PIL import Image

from posterml.commands.fetch_tmdb import cli_main
from posterml.data.tmdb.client import AUTH_ERROR_MESSAGE, TMDbAuthError, TMDbError
from posterml.data.tmdb.fetch import EXTRA_COLUMNS, LABEL_COLUMNS, FetchReport, fetch_tmdb

KEY = "test-key-0123456789"
SECRET = "SECRETKEY-1234567890abcdef"
# Shaped like a TMDb v4 read access token (a JWT), so it travels as a Bearer header.
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ0ZXN0LXRva2VuIn0.c2lnbmF0dXJlLXRlc3Q"
# per_decade=3 with the default fake movies: 101, 102, 105 (1970s) and 201, 202, 203 (2010s).
EXPECTED_IDS = {101, 102, 105, 201, 202, 203}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def server():
    with FakeTMDbServer(api_key=KEY) as srv:
        yield srv


def run_fetch(server: FakeTMDbServer, out: Path, **overrides) -> FetchReport:
    """fetch_tmdb against the fake server, 3 movies per decade, no progress bar."""
    kwargs = dict(
        decades=[1970, 2010],
        per_decade=3,
        api_key=KEY,
        api_base_url=server.base_url,
        image_base_url=server.image_base_url,
        timeout=5.0,
        progress=False,
    )
    kwargs.update(overrides)
    return fetch_tmdb(out, **kwargs)


def read_labels(out: Path) -> tuple[list[str], list[dict[str, str]]]:
    with (out / "labels.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def assert_complete_posters(out: Path, ids: set[int]) -> None:
    """Every expected poster decodes fully, and no temp file is left in images/."""
    images = out / "images"
    assert {int(p.stem) for p in images.glob("*.jpg")} == ids
    for tmdb_id in ids:
        with Image.open(images / f"{tmdb_id}.jpg") as img:
            img.load()  # full decode: a truncated file would fail here
    assert not [p for p in images.iterdir() if not p.name.endswith(".jpg")]


def test_full_fetch_writes_folder_dataset(server, tmp_path):
    report = run_fetch(server, tmp_path)

    assert (report.n_movies, report.n_downloaded, report.n_failed) == (6, 6, 0)
    columns, rows = read_labels(tmp_path)
    assert columns == LABEL_COLUMNS + EXTRA_COLUMNS
    assert columns[:7] == ["poster_id", "imdb_id", "tmdb_id", "title", "year", "genres", "image"]
    by_id = {int(r["tmdb_id"]): r for r in rows}
    assert set(by_id) == EXPECTED_IDS  # no poster (103), no genres (104), 1969 (301) skipped
    assert by_id[102]["genres"] == "Action|Adventure|Animation|Comedy|Crime"  # 7 -> first 5
    assert by_id[101]["genres"] == "Adventure|Action|Science Fiction"  # TMDb's order kept
    star = by_id[101]
    assert star["poster_id"] == "101" and star["imdb_id"] == "tt0000101"
    assert (star["title"], star["year"], star["decade"]) == ("Star Voyage", "1977", "1970")
    assert star["image"] == "images/101.jpg" and star["release_date"] == "1977-05-25"
    assert by_id[201]["decade"] == "2010"
    assert_complete_posters(tmp_path, EXPECTED_IDS)

    discover = [r for r in server.state.requests if r.startswith("/3/discover/movie")]
    assert any("sort_by=popularity.desc" in r and "gte=1970-01-01" in r for r in discover)
    assert any("lte=1979-12-31" in r and "page=2" in r for r in discover)  # paged
    images = [r for r in server.state.requests if r.startswith("/t/p/")]
    assert images and all(r.startswith("/t/p/w342/") and "api_key" not in r for r in images)


def western_and_war_movies() -> list[FakeMovie]:
    """A 1970s and a 2010s shelf where the most popular movies are neither Western nor War."""
    return [
        FakeMovie(401, "High Noon Road", "1972-03-01", [37], 90.0),
        FakeMovie(402, "Trench Line", "1975-05-01", [10752, 18], 80.0),
        FakeMovie(403, "Kitchen Sink", "1973-01-01", [18], 95.0),
        FakeMovie(404, "Laugh Riot", "1976-01-01", [35], 85.0),
        FakeMovie(405, "Frontier War", "1978-09-01", [37, 10752], 70.0),
        FakeMovie(501, "Neo Western", "2015-02-01", [37, 80], 60.0),
        FakeMovie(502, "Big Laughs", "2012-06-01", [35], 99.0),
    ]


def test_genres_fetch_movies_having_any_of_them(tmp_path):
    with FakeTMDbServer(api_key=KEY, movies=western_and_war_movies()) as srv:
        report = run_fetch(srv, tmp_path, per_decade=5, genres=["western", "War"])

        discover = [r for r in srv.state.requests if r.startswith("/3/discover/movie")]
    # Any, not all: Westerns and War movies alike (AND would have kept 405 alone).
    _, rows = read_labels(tmp_path)
    assert {int(r["tmdb_id"]) for r in rows} == {401, 402, 405, 501}
    assert report.n_movies == 4
    by_id = {int(r["tmdb_id"]): r["genres"] for r in rows}
    assert by_id[402] == "War|Drama" and by_id[501] == "Western|Crime"  # all genres kept
    assert discover and all("with_genres=37%7C10752" in r for r in discover)  # 37|10752


def test_without_genres_no_genre_filter_is_sent(server, tmp_path):
    run_fetch(server, tmp_path, decades=[2010], per_decade=1)
    discover = [r for r in server.state.requests if r.startswith("/3/discover/movie")]
    assert discover and not [r for r in discover if "with_genres" in r]


def test_unknown_genre_is_refused_before_any_request(server, tmp_path, capsys):
    from posterml.cli import build_parser as posterml_parser

    with pytest.raises(ValueError, match=r"unknown genre 'Westrn' \(did you mean 'Western'\?\)"):
        run_fetch(server, tmp_path, genres=["Westrn"])
    assert server.state.requests == []

    with pytest.raises(SystemExit) as exited:
        posterml_parser().parse_args(["fetch-tmdb", "--genres", "Western,Sci-fi"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "unknown genre 'Sci-fi' (did you mean 'Science Fiction'?)" in err
    assert "TMDb's genres are Action, Adventure" in err
    args = posterml_parser().parse_args(["fetch-tmdb", "--genres", " western , WAR,War"])
    assert args.genres == ["Western", "War"]


def test_downloaded_files_follow_the_umask(server, tmp_path):
    saved = os.umask(0o022)
    try:
        run_fetch(server, tmp_path, decades=[1970], per_decade=1)
    finally:
        os.umask(saved)
    for path in (tmp_path / "labels.csv", tmp_path / "images" / "101.jpg"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path  # not mkstemp's 0600


def test_429_with_retry_after_then_success(server, tmp_path, caplog):
    server.fail("genres", 429, times=1, retry_after="1")
    server.fail("discover", 429, times=2, retry_after="0")

    started = time.monotonic()
    report = run_fetch(server, tmp_path)

    assert time.monotonic() - started >= 0.9  # Retry-After: 1 was waited out
    assert report.n_movies == 6 and report.n_failed == 0
    assert server.hits["genres"] == 2
    assert server.hits["discover"] == 3 + 2  # 1970s: 2 pages, 2010s: 1 page; + 2 throttled
    # Each throttled call is announced at WARNING (urllib3 alone would say it at DEBUG only).
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "TMDb answered HTTP 429 for /3/genre/movie/list; retry in 1.0s (4 left)" in warnings
    assert sum("HTTP 429 for /3/discover/movie" in m for m in warnings) == 2


def test_500_then_success(server, tmp_path):
    server.fail("external_ids", 500, times=1)
    server.fail("image", 503, times=1)

    report = run_fetch(server, tmp_path)

    assert report.n_movies == 6 and report.n_failed == 0
    assert server.hits["external_ids"] == 7 and server.hits["image"] == 7


def test_persistent_listing_error_raises_scrubbed(server, tmp_path):
    server.fail("discover", 500, times=10)

    with pytest.raises(TMDbError) as excinfo:
        run_fetch(server, tmp_path, max_retries=1)

    assert "500" in str(excinfo.value) and KEY not in str(excinfo.value)
    assert "api_key=***" in str(excinfo.value)
    assert server.hits["discover"] == 2


def test_dropped_connection_leaves_no_partial_file_and_retries(server, tmp_path):
    server.drop_image(times=1)

    report = run_fetch(server, tmp_path)

    assert report.n_downloaded == 6 and report.n_failed == 0
    assert server.hits["image"] == 7
    assert_complete_posters(tmp_path, EXPECTED_IDS)


def test_poster_failing_for_good_is_reported_not_fatal(server, tmp_path, capfd):
    # First image request: cut twice (retries exhausted at max_retries=1).
    server.add_faults("image", Fault(drop=True), Fault(drop=True))

    report = run_fetch(server, tmp_path, max_retries=1)

    assert report.n_failed == 1 and report.failed_ids == [101]
    assert report.n_movies == 5
    _, rows = read_labels(tmp_path)
    assert "101" not in {r["tmdb_id"] for r in rows}
    assert_complete_posters(tmp_path, EXPECTED_IDS - {101})
    assert "101" in capfd.readouterr().err


def test_resume_skips_existing_and_refetches_missing(server, tmp_path):
    run_fetch(server, tmp_path)
    image_hits, id_hits = server.hits["image"], server.hits["external_ids"]

    again = run_fetch(server, tmp_path)

    assert (again.n_downloaded, again.n_skipped_existing, again.n_movies) == (0, 6, 6)
    assert server.hits["image"] == image_hits  # nothing downloaded again
    assert server.hits["external_ids"] == id_hits  # IMDb ids reused from labels.csv

    (tmp_path / "images" / "202.jpg").unlink()
    (tmp_path / "images" / "105.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "images" / ".101.stale.part").write_bytes(b"left by a killed run")

    third = run_fetch(server, tmp_path)

    assert (third.n_downloaded, third.n_skipped_existing) == (2, 4)
    assert server.hits["image"] == image_hits + 2
    assert_complete_posters(tmp_path, EXPECTED_IDS)
    assert len(read_labels(tmp_path)[1]) == 6


def test_labels_written_per_decade_survive_a_later_failure(server, tmp_path):
    # 2 discover calls for the 1970s succeed, then the 2010s listing fails for good.
    server.add_faults("discover", Fault(), Fault(), *[Fault(status=500)] * 5)

    with pytest.raises(TMDbError):
        run_fetch(server, tmp_path, max_retries=1)

    _, rows = read_labels(tmp_path)
    assert {int(r["tmdb_id"]) for r in rows} == {101, 102, 105}


def test_api_server_unreachable_raises_scrubbed_error(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"

    with pytest.raises(TMDbError) as excinfo:
        fetch_tmdb(tmp_path, [1970], 1, KEY, api_base_url=base, max_retries=1, progress=False)

    message = str(excinfo.value)
    assert message.startswith("genre list failed: ConnectionError")
    assert "api_key=***" in message and KEY not in message  # requests' URL, scrubbed


def test_answer_that_is_not_json_is_a_clear_error(server, tmp_path):
    server.add_faults("genres", Fault(garbage=True))

    with pytest.raises(TMDbError, match="/3/genre/movie/list with something that is not a JSON"):
        run_fetch(server, tmp_path)


def test_read_access_token_travels_as_bearer_header_to_the_api_only(tmp_path):
    with FakeTMDbServer(api_key=KEY, read_token=TOKEN) as srv:
        report = run_fetch(srv, tmp_path, api_key=TOKEN)

    assert report.n_movies == 6 and report.n_failed == 0
    sent = srv.state.authorizations
    assert not [path for path, _ in sent if "api_key" in path or TOKEN in path]
    api = [auth for path, auth in sent if path.startswith("/3/")]
    assert api and set(api) == {f"Bearer {TOKEN}"}
    images = [auth for path, auth in sent if path.startswith("/t/p/")]
    assert images and set(images) == {None}  # posters are public: no token to the image host


def test_wrong_read_access_token_raises_auth_error(tmp_path):
    wrong = TOKEN[:-4] + "XXXX"
    with FakeTMDbServer(api_key=KEY, read_token=TOKEN) as srv:
        with pytest.raises(TMDbAuthError, match="HTTP 401"):
            run_fetch(srv, tmp_path, api_key=wrong)

    assert srv.state.authorizations == [("/3/genre/movie/list", f"Bearer {wrong}")]


def test_bad_key_raises_auth_error_without_retrying(server, tmp_path):
    with pytest.raises(TMDbAuthError) as excinfo:
        run_fetch(server, tmp_path, api_key="wrong-key-42")

    assert str(excinfo.value) == AUTH_ERROR_MESSAGE
    assert server.hits["genres"] == 0  # 401 is answered before endpoint counting
    assert len(server.state.requests) == 1


@pytest.fixture
def mlflow_tmp(tracking_uri, tmp_path, monkeypatch):
    """conftest's sqlite store + cwd in tmp_path (artifacts land there), and no ambient key."""
    monkeypatch.delenv("TMDB_API_KEY", raising=False)
    return tmp_path


@pytest.mark.slow
def test_cli_bad_key_exits_nonzero_with_clear_message(server, mlflow_tmp, capfd):
    bad_key = "BADKEY-ffff0000"
    argv = [
        "--out",
        "data",
        "--decades",
        "1970",
        "--per-decade",
        "2",
        "--api-key",
        bad_key,
        "--api-base-url",
        server.base_url,
        "--image-base-url",
        server.image_base_url,
    ]

    code = cli_main(argv)

    assert code != 0
    assert len(server.state.requests) == 1  # no retry on 401
    out, err = capfd.readouterr()
    assert "TMDb rejected the API key (HTTP 401): check TMDB_API_KEY" in err
    assert bad_key not in out + err


def test_cli_without_key_exits_2(mlflow_tmp, capfd):
    assert cli_main(["--out", "data"]) == 2
    assert "TMDB_API_KEY" in capfd.readouterr().err


@pytest.mark.slow
def test_secret_never_leaks(mlflow_tmp, capfd, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 logs every request URL at DEBUG
    with FakeTMDbServer(api_key=SECRET) as srv:
        srv.fail("discover", 429, times=1, retry_after="0")
        srv.fail("external_ids", 500, times=1)
        # Cut one image (retried), serve the retry, then a 404 that fails one poster for good.
        srv.add_faults("image", Fault(drop=True), Fault(), Fault(status=404))
        argv = [
            "--out",
            "data",
            "--decades",
            "1970,2010",
            "--per-decade",
            "3",
            "--api-key",
            SECRET,
            "--api-base-url",
            srv.base_url,
            "--image-base-url",
            srv.image_base_url,
            "--max-retries",
            "2",
        ]

        code = cli_main(argv)

    assert code == 0
    secret = SECRET.encode()
    files = [p for p in mlflow_tmp.rglob("*") if p.is_file()]
    assert (mlflow_tmp / "mlflow.db") in files
    assert [p for p in files if p.name == "labels.csv"].__len__() >= 2  # dataset + artifact
    assert [p.name for p in files if secret in p.read_bytes()] == []

    out, err = capfd.readouterr()
    assert "retry" in caplog.text and "failed" in err  # the fault paths really ran
    assert any("TMDb answered HTTP 429" in m for m in caplog.messages)
    assert any(m.startswith("poster 101: ChunkedEncodingError") for m in caplog.messages)
    assert SECRET not in out and SECRET not in err
    messages = [r.getMessage() for r in caplog.records]
    assert any("api_key=***" in m for m in messages)  # urllib3's URL lines, scrubbed
    assert not [m for m in messages if SECRET in m]
    assert SECRET not in caplog.text


def test_fetch_tmdb_is_a_posterml_subcommand_sharing_the_script_parser():
    from posterml.cli import build_parser as posterml_parser
    from posterml.commands.fetch_tmdb import build_parser, run_fetch_command

    args = posterml_parser().parse_args(["fetch-tmdb", "--decades", "1970,1990"])
    assert args.handler is run_fetch_command and args.decades == [1970, 1990]
    standalone = vars(build_parser().parse_args([]))
    assert {k: v for k, v in vars(args).items() if k in standalone} == standalone | {
        "decades": [1970, 1990]
    }
    assert set(vars(args)) - set(standalone) == {"command", "handler"}
    with pytest.raises(SystemExit):
        posterml_parser().parse_args(["fetch-tmdb", "--decades", "1975"])  # not a decade


@pytest.mark.slow
def test_posterml_fetch_tmdb_with_token_logs_flags_but_no_secret(
    mlflow_tmp, monkeypatch, capfd, caplog
):
    """``posterml fetch-tmdb`` in-process, the token in TMDB_API_KEY: the run logs every flag
    (and nothing else) as a param, and the token reaches no file, param, output or log."""
    from mlflow.tracking import MlflowClient

    from posterml.cli import main

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TMDB_API_KEY", TOKEN)
    with FakeTMDbServer(api_key=KEY, read_token=TOKEN) as srv:
        srv.fail("discover", 503, times=1, retry_after="0")
        argv = ["fetch-tmdb", "--out", "data", "--decades", "2010", "--per-decade", "2"]
        code = main(argv + ["--api-base-url", srv.base_url, "--image-base-url", srv.image_base_url])

    assert code == 0
    (run,) = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).search_runs(["0"])
    assert run.info.status == "FINISHED" and run.data.tags["dataset"] == "tmdb"
    assert run.data.params["decades"] == "2010" and run.data.params["per_decade"] == "2"
    assert set(run.data.params) == {
        "out", "decades", "per_decade", "genres", "poster_size", "api_base_url",
        "image_base_url", "timeout", "max_retries", "no_progress",
    }  # fmt: skip
    assert run.data.params["genres"] == ""
    assert run.data.metrics["n_movies"] == 2
    files = [p for p in mlflow_tmp.rglob("*") if p.is_file()]
    assert [p.name for p in files if TOKEN.encode() in p.read_bytes()] == []
    out, err = capfd.readouterr()
    assert "2 movies" in out and TOKEN not in out + err
    assert any("HTTP 503" in m for m in caplog.messages) and TOKEN not in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_killed_fetch_ends_its_run_killed_and_leaves_no_temp_file(server, tmp_path, signum):
    """A real ``posterml fetch-tmdb`` process, signalled in the middle of a poster download,
    removes its temp file and leaves its MLflow run KILLED, not RUNNING forever."""
    server.stall_image()  # the first poster hangs half-sent: the client sits mid-download
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {"MLFLOW_TRACKING_URI": uri, "TMDB_API_KEY": KEY, "PYTHONPATH": str(REPO)}
    images = tmp_path / "data" / "images"
    command = [sys.executable, "-m", "posterml.cli", "fetch-tmdb", "--out", "data"]
    command += ["--decades", "1970", "--per-decade", "3", "--timeout", "60", "--no-progress"]
    command += ["--api-base-url", server.base_url, "--image-base-url", server.image_base_url]

    def temp_files() -> list[Path]:
        return list(images.glob(".*")) if images.is_dir() else []

    returncode, err = interrupt_when(
        command,
        env,
        tmp_path,
        lambda: bool(temp_files() and server.hits["image"]),
        signum,
        "fetch's download",
        timeout=60,
    )

    assert temp_files() == [], err
    from mlflow.tracking import MlflowClient

    (run,) = MlflowClient(uri).search_runs(["0"])
    assert run.info.status == "KILLED", err
    assert returncode == 128 + signum, err
    assert "Traceback" not in err
