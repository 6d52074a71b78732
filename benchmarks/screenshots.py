"""What the MLflow UI shows of a run, in a real headless browser: screenshots and checks.

    python -m benchmarks.screenshots --store sqlite:////path/to/mlflow.db --out screenshots
    python -m benchmarks.screenshots --smoke   # the smoke model's store, the run page only

Given a tracking store that ``make demo`` and ``posterml register`` filled, starts
``mlflow server`` on 127.0.0.1 (a free port) and, with headless Chromium (Debian's
``chromium``: ``apt-get install chromium``), saves PNGs of the experiment's runs list, the
parent run's overview, the registered model and its champion version, and prints their
paths. It then checks the rendered pages (``chromium --dump-dom`` after the page's scripts
ran) and, as ground truth, the same store through MLflow's REST client:

* every run is named (no MLflow random "adjective-noun-123" names), and the runs list shows
  the parent runs' names;
* the parent run's description holds the headline F1 table, rendered as a table;
* the champion model version links to a logged model, and its page links to it.

Exits 1 with one line per failed check. Only loopback addresses are contacted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from html import unescape
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.name_utils import _GENERATOR_NOUNS, _GENERATOR_PREDICATES

from benchmarks import _smoke
from benchmarks._server import TrackingServer
from posterml.names import CHAMPION_ALIAS, EXPERIMENT_ROLE, MODEL_NAME, ROLE_TAG
from posterml.tracking import DEFAULT_TRACKING_URI, sqlite_file

# The UI loads its data with several requests after the page's scripts start; Chromium's
# virtual time budget lets them finish first (8 s rendered every page fully on 2 busy cores).
RENDER_BUDGET_MS = 10_000
BROWSER_TIMEOUT_S = 90  # one visit took 12 s; a rare one hangs, and is tried once more
BROWSER_TRIES = 2
WINDOW = "1440,1100"
RANDOM_NAME = re.compile(
    rf"\b(?:{'|'.join(_GENERATOR_PREDICATES)})-(?:{'|'.join(_GENERATOR_NOUNS)})-\d+\b"
)
HEADLINE_HEADER = "| split | micro F1 |"  # the run description (posterml.modeling.report)
NO_CHROMIUM = "no chromium on PATH (Debian: apt-get install -y chromium)"
# Smoke: one page, its two visits; all four take ~100 s on 2 busy cores.
SMOKE_PAGES = ("run",)


@dataclass
class Page:
    """One UI page: where it is, what it is called in the output, and its rendered DOM."""

    name: str
    route: str  # the UI's hash route
    png: Path | None = None
    dom: str = ""


def find_chromium(required: bool = True) -> str | None:
    """The Chromium binary; if there is none, exit saying how to install it (or, when not
    ``required``, None)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if required:
        raise SystemExit(f"screenshots: {NO_CHROMIUM}")
    return None


def _visit(command: list[str]) -> subprocess.CompletedProcess | None:
    """Run one Chromium command in its own process group; None if it outlived the timeout
    (then the whole group, renderer and GPU helpers included, is killed)."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=BROWSER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def browse(chromium: str, url: str, *extra: str) -> subprocess.CompletedProcess:
    """One headless Chromium visit to ``url`` with a throwaway profile."""
    for _ in range(BROWSER_TRIES):
        with tempfile.TemporaryDirectory(prefix="posterml-chromium-") as profile:
            done = _visit(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",  # root in a container: the sandbox cannot start
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    "--no-first-run",
                    f"--user-data-dir={profile}",
                    f"--window-size={WINDOW}",
                    f"--virtual-time-budget={RENDER_BUDGET_MS}",
                    *extra,
                    url,
                ]
            )
        if done is not None:
            break
    else:
        raise RuntimeError(f"chromium did not finish {url} in {BROWSER_TIMEOUT_S} s, twice")
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed on {url} ({done.returncode}): {done.stderr[-2000:]}")
    return done


def capture(chromium: str, base_url: str, page: Page, out: Path) -> None:
    """Save ``page``'s screenshot under ``out`` and keep its rendered DOM."""
    url = f"{base_url}/#{page.route}"
    page.png = out / f"{page.name}.png"
    start = time.perf_counter()
    browse(chromium, url, f"--screenshot={page.png}")
    if not page.png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot for {url}")
    page.dom = browse(chromium, url, "--dump-dom").stdout
    print(f"{page.name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)


def page_text(dom: str) -> str:
    """The visible text of a DOM dump, roughly (tags stripped, entities decoded)."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))


# --------------------------------------------------------------------------- checks
def logged_model_id(version) -> str | None:
    """The logged model a registry version came from: its ``model_id`` where the store keeps
    one, else the ``models:/<id>`` source that ``mlflow.register_model`` records."""
    if getattr(version, "model_id", None):
        return version.model_id
    found = re.fullmatch(r"models:/(m-[0-9a-f]+)", version.source or "")
    return found.group(1) if found else None


def check_store(client: MlflowClient, experiment_id: str, parent_id: str, version) -> list[str]:
    """What the store itself must hold (the REST API's view); one message per problem."""
    problems = []
    for run in client.search_runs([experiment_id], max_results=1000):
        name = run.info.run_name or ""
        if not name or RANDOM_NAME.fullmatch(name):
            problems.append(f"run {run.info.run_id} has a random or empty name {name!r}")
    description = client.get_run(parent_id).data.tags.get("mlflow.note.content", "")
    if HEADLINE_HEADER not in description:
        problems.append(f"run {parent_id}'s description has no headline table")
    model_id = logged_model_id(version)
    if model_id is None:
        problems.append(
            f"{version.name} v{version.version} links to no logged model "
            f"(source {version.source!r})"
        )
    else:
        try:
            source_run = client.get_logged_model(model_id).source_run_id
        except MlflowException as exc:
            problems.append(f"{version.name} v{version.version}'s logged model: {exc.message}")
        else:
            if source_run != version.run_id:
                problems.append(f"logged model {model_id} is not from run {version.run_id}")
    return problems


def check_pages(pages: dict[str, Page], parent_names: list[str], model_id: str) -> list[str]:
    """What the rendered pages must show (those captured); one message per problem."""
    problems = []
    if "runs" in pages:
        runs_text = page_text(pages["runs"].dom)
        for name in parent_names:
            if name not in runs_text:
                problems.append(f"runs list does not show the run {name!r}")
    for page in pages.values():
        if found := RANDOM_NAME.search(page_text(page.dom)):
            problems.append(f"{page.name} page shows a random run name {found.group()!r}")
    if "run" in pages:
        overview = pages["run"].dom
        if "<table" not in overview or "weighted F1" not in page_text(overview):
            problems.append("run overview does not render the description's headline table")
    if model_id and "version" in pages and f"/models/{model_id}" not in pages["version"].dom:
        problems.append(f"model version page has no link to logged model {model_id}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store",
        default=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI),
        help="sqlite tracking store URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)",
    )
    parser.add_argument(
        "--out", type=Path, help="PNG folder (default: screenshots; --smoke: a temp folder)"
    )
    parser.add_argument("--model-name", default=MODEL_NAME)
    args = _smoke.parse_args(parser, argv)
    if args.smoke:  # the smoke model's store: a champion trained on the synthetic set
        args.store = _smoke.smoke_model().tracking_uri
    database = sqlite_file(args.store)
    if database is None or not database.is_file():
        raise SystemExit(f"screenshots: {args.store} is not an existing sqlite store")
    chromium = find_chromium(required=not args.smoke)
    with tempfile.TemporaryDirectory(prefix="posterml-ui-") as tmp:
        args.out = args.out or (Path(tmp) / "png" if args.smoke else Path("screenshots"))
        problems, n_pages = check_ui(args, database, chromium, Path(tmp))
    for problem in problems:
        print(f"screenshots: FAILED: {problem}", file=sys.stderr)
    if not problems:
        print(f"screenshots: all checks passed ({n_pages} pages)")
    return 1 if problems else 0


def check_ui(
    args: argparse.Namespace, database: Path, chromium: str | None, tmp: Path
) -> tuple[list[str], int]:
    """Serve the store, check it and (with ``chromium``) its rendered pages; the problems
    found and how many pages were checked."""
    store = f"sqlite:///{database.resolve()}"
    start = time.perf_counter()
    # cwd: the store's folder, so relative artifact locations resolve as when logged.
    with TrackingServer(store, tmp, cwd=database.resolve().parent, timeout=120.0) as server:
        print(f"mlflow server up: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        version = client.get_model_version_by_alias(args.model_name, CHAMPION_ALIAS)
        parent = client.get_run(version.run_id)
        experiment_id = parent.info.experiment_id
        parents = client.search_runs(
            [experiment_id], filter_string=f"tags.`{ROLE_TAG}` = '{EXPERIMENT_ROLE}'"
        )
        pages = {
            "runs": Page("runs", f"/experiments/{experiment_id}/runs"),
            "run": Page("run", f"/experiments/{experiment_id}/runs/{parent.info.run_id}"),
            "model": Page("model", f"/models/{args.model_name}"),
            "version": Page("version", f"/models/{args.model_name}/versions/{version.version}"),
        }
        if chromium is None:  # only a smoke run gets here
            _smoke.skip("the screenshots and the rendered pages' checks", NO_CHROMIUM)
            pages = {}
        elif args.smoke:
            pages = {name: pages[name] for name in SMOKE_PAGES}
            _smoke.say(f"captures only the {', '.join(pages)} page (two Chromium visits each)")
        args.out.mkdir(parents=True, exist_ok=True)
        for page in pages.values():
            capture(chromium, server.url, page, args.out)
            print(page.png)
        problems = check_store(client, experiment_id, parent.info.run_id, version)
        # The list shows top-level runs; a compare run's families sit folded under it.
        names = [run.info.run_name for run in parents if "mlflow.parentRunId" not in run.data.tags]
        problems += check_pages(pages, names, logged_model_id(version) or "")
    return problems, len(pages)


if __name__ == "__main__":
    raise SystemExit(main())
