"""The review page, driven like a person would: a real ``posterml review`` process on
127.0.0.1 and Debian's Chromium through Playwright, synthetic posters only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests
from helpers import write_image

from benchmarks._server import free_port

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.slow


def scans(folder: Path, n: int) -> list[Path]:
    """``n`` distinct synthetic posters, named so their order is their number."""
    return [write_image(folder / f"p{k:03d}.jpg", seed=500 + k, size=(120, 180)) for k in range(n)]


class ReviewServer:
    """``posterml review`` in a process of its own, stopped on exit."""

    def __init__(self, cwd: Path, *args: str, env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        environment.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{cwd / 'no-model.db'}")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "posterml.cli", "review", *args, "--port", str(self.port)],
            cwd=cwd,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, self.process.communicate()[0]
            try:
                requests.get(self.url + "/", timeout=2, allow_redirects=False, params=self.query)
                return
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the review page never answered"
                time.sleep(0.2)

    query: dict = {}

    def stop(self) -> str:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        return out


@pytest.fixture
def server(tmp_path) -> Iterator:
    started: list[ReviewServer] = []

    def start(*args: str, **kwargs) -> ReviewServer:
        started.append(ReviewServer(tmp_path, *args, **kwargs))
        return started[-1]

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium (Debian: apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def labels(shop: Path) -> pd.DataFrame:
    return pd.read_csv(shop / "labels.csv", dtype=str).sort_values("title")


@pytest.mark.browser
def test_label_fifty_by_keyboard_resume_undo_and_two_tabs(tmp_path, server, browser, capsys):
    scans(tmp_path / "scans", 53)
    shop = tmp_path / "shop"
    site = server("scans", "--to", str(shop))
    page = browser.new_page()
    page.goto(site.url + "/")
    assert "every genre starts unticked" in page.inner_text("#note")  # no model anywhere

    # 50 posters by keyboard: Drama (d), plus War (w) on every 5th, a year, Enter.
    start = time.perf_counter()
    for k in range(50):
        assert page.inner_text("#file-name") == f"p{k:03d}.jpg"
        page.keyboard.press("d")
        if k % 5 == 0:
            page.keyboard.press("w")
        page.keyboard.press("/")
        page.keyboard.type(str(1940 + k % 40))
        with page.expect_navigation():
            page.keyboard.press("Enter")
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nlabelled 50 posters by keyboard in {seconds:.1f} s ({seconds / 50:.2f} s each)")
    table = labels(shop)
    assert len(table) == 50 and table["title"].tolist() == [f"p{k:03d}" for k in range(50)]
    assert table["genres"].tolist() == ["Drama|War" if k % 5 == 0 else "Drama" for k in range(50)]
    assert table["year"].tolist() == [str(1940 + k % 40) for k in range(50)]

    # A browser closed and reopened resumes at the first poster not saved.
    page.close()
    page = browser.new_page()
    page.goto(site.url + "/")
    assert page.inner_text("#file-name") == "p050.jpg"
    assert page.inner_text("#progress").startswith("50 of 53 reviewed")

    # Undo takes the last save back, and shows that poster again.
    with page.expect_navigation():
        page.keyboard.press("z")
    assert page.inner_text("#file-name") == "p049.jpg" and len(labels(shop)) == 49
    # Skip and arrows move without saving.
    with page.expect_navigation():
        page.keyboard.press("s")
    assert page.inner_text("#file-name") == "p050.jpg" and len(labels(shop)) == 49
    with page.expect_navigation():
        page.keyboard.press("ArrowLeft")
    assert page.inner_text("#file-name") == "p049.jpg"

    # Two tabs save different posters at once: both land.
    tabs = [browser.new_page() for _ in range(2)]
    for tab, index in zip(tabs, (51, 52), strict=True):
        tab.goto(f"{site.url}/poster/{index}")
        tab.keyboard.press("h")  # History
        tab.fill("#year", "1955")
    for tab in tabs:
        tab.evaluate("document.getElementById('save-form').requestSubmit()")
    for tab in tabs:
        tab.wait_for_load_state()
    deadline = time.monotonic() + 30
    while len(labels(shop)) < 51 and time.monotonic() < deadline:
        time.sleep(0.2)
    table = labels(shop).set_index("title")
    assert table.loc[["p051", "p052"], "genres"].tolist() == ["History", "History"]


@pytest.mark.browser
def test_the_page_refuses_bad_genres_foreign_posts_and_paths(tmp_path, server):
    scans(tmp_path / "scans", 3)
    (tmp_path / "secret.jpg").write_bytes((tmp_path / "scans" / "p000.jpg").read_bytes())
    shop = tmp_path / "shop"
    site = server("scans", "--to", str(shop))
    post = f"{site.url}/poster/0"
    assert requests.post(post, data={"genre": "Westrn", "year": "1950"}).status_code == 400
    assert requests.post(post, data={"genre": "Drama", "year": "19x"}).status_code == 400
    big = {"genre": "Drama", "year": "1950", "pad": "x" * 10_000}
    assert requests.post(post, data=big).status_code == 413
    foreign = {"Origin": "http://evil.example"}
    assert (
        requests.post(post, data={"genre": "Drama", "year": "1950"}, headers=foreign).status_code
        == 403
    )
    rebound = {"Host": "evil.example"}
    assert requests.get(site.url + "/poster/0", headers=rebound).status_code == 400
    for path in ("/image/3", "/image/-1", "/image/..%2F..%2Fsecret.jpg", "/image/../secret.jpg"):
        assert requests.get(site.url + path).status_code == 404, path
    assert not (shop / "labels.csv").exists()  # nothing was saved by any of that
    ok = requests.post(post, data={"genre": ["Drama", "War"], "year": "1950"})
    assert ok.status_code == 200 and len(labels(shop)) == 1


def test_the_page_shows_what_ocr_read_escaped(tmp_path, server):
    """A `posterml predict` csv with a text column: each poster's page shows the words the
    model read, as text (OCR output is untrusted: markup in it is never markup)."""
    scans(tmp_path / "scans", 2)
    words = ["THE HAUNTED <script>alert(1)</script>", ""]
    table = pd.DataFrame(
        {
            "file": ["scans/p000.jpg", "scans/p001.jpg"],
            "genres": ["Horror", "Drama"],
            "maybe": ["", ""],
            "year": ["", ""],
            "review_priority": ["2", "1"],
            "text": words,
        }
    )
    table.to_csv(tmp_path / "genres.csv", index=False)
    site = server("genres.csv", "--to", str(tmp_path / "shop"))
    first = requests.get(site.url + "/poster/0").text
    assert "Read on it: <q>THE HAUNTED &lt;script&gt;alert(1)&lt;/script&gt;</q>" in first
    assert "<script>alert(1)" not in first
    assert 'id="words"' not in requests.get(site.url + "/poster/1").text


@pytest.mark.browser
def test_beyond_loopback_needs_the_token(tmp_path, server):
    scans(tmp_path / "scans", 2)
    site = server("scans", "--to", str(tmp_path / "shop"), "--host", "0.0.0.0", "--token", "t0k3n")
    site.query = {"token": "t0k3n"}
    assert requests.get(site.url + "/poster/0").status_code == 401
    assert requests.get(site.url + "/poster/0?token=wrong").status_code == 401
    opened = requests.get(site.url + "/poster/0?token=t0k3n")
    assert opened.status_code == 200 and "p000.jpg" in opened.text
    assert "posterml_review_token" in opened.headers["set-cookie"]


@pytest.mark.browser
def test_with_the_champion_the_page_shows_its_genres(model_store, tmp_path, server):
    """`posterml review scans --to shop --port N` answers with the posters and the
    champion's genres ticked, in the HTML itself."""
    scans(tmp_path / "scans", 4)
    site = server(
        "scans",
        "--to",
        str(tmp_path / "shop"),
        env={"MLFLOW_TRACKING_URI": model_store.tracking_uri},
    )
    page = requests.get(site.url + "/")
    assert page.status_code == 200
    assert "Genres ticked by models:/poster-genre-classifier@champion" in page.text
    assert "checked" in page.text and "Science Fiction" in page.text and ".jpg" in page.text
    image = requests.get(site.url + "/image/0")
    assert image.headers["content-type"] == "image/jpeg" and image.content[:2] == b"\xff\xd8"


def test_review_years_match_as_predict_matches_them_and_the_page_shows_the_year_used(
    model_store, tmp_path, server, capsys
):
    """`posterml review scans --years years.csv` with bare names: the model's year is in
    the page, the years not used are counted in one line; an unmatchable csv opens no page."""
    from posterml.cli import main

    scans(tmp_path / "scans", 4)
    years = tmp_path / "years.csv"
    years.write_text("file,year\np001.jpg,1995\np002.jpg,1800\nx.jpg,1990\n")
    env = {"MLFLOW_TRACKING_URI": model_store.tracking_uri}
    site = server("scans", "--to", str(tmp_path / "shop"), "--years", "years.csv", env=env)
    names = {}
    for index in range(4):
        page = requests.get(f"{site.url}/poster/{index}").text
        names[page.split('<h1 id="file-name">')[1].split("<")[0]] = page
    assert 'value="1995"' in names["p001.jpg"] and "the model used 1995" in names["p001.jpg"]
    for name in ("p000.jpg", "p002.jpg", "p003.jpg"):
        assert 'id="year" value=""' in names[name] and "the model had no year" in names[name]
    printed = site.stop()
    assert (
        "years from years.csv: 1 of 4 poster(s) have one; 1 row(s) match no poster (x.jpg); "
        "1 year(s) are no release year (scans/p002.jpg); 2 poster(s) have none "
        "(scans/p000.jpg, scans/p003.jpg)\n"
    ) in printed
    assert "year not used: scans/p002.jpg: years.csv line 3: year 1800 is not a release" in printed

    years.write_text("file,year\nposters/p001.jpg,1995\n")
    argv = ["review", str(tmp_path / "scans"), "--to", str(tmp_path / "shop"), "--years"]
    assert main([*argv, str(years), "--model", model_store.model_uri]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"posterml review: {years}: none of its 1 row(s) matches a scanned")
    assert err.count("\n") == 1 and not (tmp_path / "shop").exists()
    # A predict csv carries the years its genres were predicted with: --years is refused.
    listing = tmp_path / "genres.csv"
    listing.write_text("file,genres,year\nscans/p001.jpg,Drama,1995\n")
    argv = ["review", str(listing), "--to", str(tmp_path / "shop"), "--years", str(years)]
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        f"posterml review: --years is for a folder: {listing} carries its years already\n"
    )


@pytest.mark.browser
def test_a_broken_or_huge_image_is_shown_as_such_and_never_saved(tmp_path, server):
    from bad_inputs import bad_image

    folder = tmp_path / "scans"
    scans(folder, 1)
    (folder / "p001.jpg").write_bytes(b"\xff\xd8 not a poster")
    (folder / "p002.png").write_bytes(bad_image("pixel-bomb-png"))
    shop = tmp_path / "shop"
    site = server("scans", "--to", str(shop))
    for index in (1, 2):
        shown = requests.get(f"{site.url}/image/{index}")
        assert shown.status_code == 422 and "cannot show" in shown.text
        saved = requests.post(f"{site.url}/poster/{index}", data={"genre": "Drama", "year": "1950"})
        assert saved.status_code == 400 and "Not saved" in saved.text
    assert not (shop / "labels.csv").exists()
