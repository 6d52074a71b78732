"""``posterml fetch-tmdb`` (and the MLproject entry ``fetch_tmdb``): fetch as an MLflow run.

One argument definition (:func:`add_fetch_arguments`) serves both the ``posterml``
subcommand (:func:`add_parser`) and the standalone parser of
``experiments/fetch_tmdb.py`` (:func:`cli_main`). The run is tagged ``dataset=tmdb``; it logs
every flag but the key as a param, the counts as metrics, ``labels.csv`` and a JSON report.
The key is read from ``TMDB_API_KEY`` (or ``--api-key``) and reaches no param, tag, artifact
or message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from posterml.data.tmdb.auth import Credential
from posterml.data.tmdb.client import TMDbError
from posterml.data.tmdb.fetch import FetchReport, fetch_tmdb
from posterml.io import Terminated, run_interruptible

DESCRIPTION = (
    "Download TMDb posters + genres per decade into a folder dataset "
    "(labels.csv + images/), tracked as an MLflow run; --genres fetches only movies having "
    "any of the genres given."
)
# Namespace entries that are not flags of this command: never logged as params.
_NOT_PARAMS = frozenset({"api_key", "handler", "command"})


def _decade_list(text: str) -> list[int]:
    """argparse type: '1970,2010' -> [1970, 2010]; each must be a year ending in 0."""
    try:
        decades = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated years, got {text!r}") from None
    if not decades or any(d % 10 for d in decades):
        raise argparse.ArgumentTypeError(f"decades must be years ending in 0, got {text!r}")
    return decades


def _genre_list(text: str) -> list[str]:
    """argparse type: 'western, War' -> ['Western', 'War']; '' -> [] (every genre)."""
    from posterml.data.tmdb.discover import chosen_genres

    try:
        return chosen_genres(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_fetch_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the fetch flags to ``parser`` (shared by both entry points)."""
    parser.add_argument("--out", default="data/tmdb", help="output folder (default: data/tmdb)")
    parser.add_argument(
        "--decades", type=_decade_list, default=[1970, 2010], help="comma list (default 1970,2010)"
    )
    parser.add_argument("--per-decade", type=int, default=100, help="movies per decade (100)")
    parser.add_argument(
        "--genres",
        type=_genre_list,
        default=[],
        help="only movies having ANY of these TMDb genres, e.g. Western,War (comma-separated, "
        "any case; default: every genre). Each movie keeps all its genres. To grow the "
        "genres a dataset lacks: fetch into a new --out folder, then posterml add it",
    )
    parser.add_argument("--poster-size", default="w342", help="TMDb image size (default w342)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="TMDb v3 API key or v4 read access token; prefer the TMDB_API_KEY environment "
        "variable (argv is visible to other users of the machine)",
    )
    parser.add_argument("--api-base-url", default=None, help="TMDb API root (tests, proxies)")
    parser.add_argument("--image-base-url", default=None, help="poster root (tests, proxies)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (10)")
    parser.add_argument("--max-retries", type=int, default=5, help="retries per call (5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``posterml fetch-tmdb`` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "fetch-tmdb",
        help="download posters + genres from TMDb into a folder dataset",
        description=DESCRIPTION,
    )
    add_fetch_arguments(parser)
    parser.set_defaults(handler=run_fetch_command)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The standalone parser of the MLproject entry point ``fetch_tmdb``."""
    return add_fetch_arguments(argparse.ArgumentParser(prog="fetch_tmdb", description=DESCRIPTION))


def cli_main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with :func:`build_parser` and run :func:`run_fetch_command`.

    Ctrl-C/SIGTERM exit 130/143 with the MLflow run marked KILLED and no temp file left.
    """
    args = build_parser().parse_args(argv)
    return run_interruptible("fetch_tmdb", lambda: run_fetch_command(args))


def _run_params(args: argparse.Namespace, credential: Credential) -> dict[str, str]:
    """MLflow params: every flag except the key (scrubbed anyway, in case a URL embeds it)."""
    params = {k: v for k, v in vars(args).items() if k not in _NOT_PARAMS}
    params["decades"] = ",".join(str(d) for d in args.decades)
    params["genres"] = ",".join(args.genres)
    return {k: credential.scrub(str(v)) for k, v in params.items()}


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


def run_fetch_command(args: argparse.Namespace) -> int:
    """Fetch inside an MLflow run (tag ``dataset=tmdb``) and return an exit code.

    0 on success (individual failed posters are reported, not fatal), 1 when TMDb fails or
    rejects the key, 2 when no key is given. An interruption ends the run KILLED and
    propagates (the caller's :func:`posterml.io.run_interruptible` turns it into 130/143).
    """
    import mlflow

    from posterml.tracking import configure_tracking

    secret = (args.api_key or os.environ.get("TMDB_API_KEY") or "").strip()
    credential = Credential(secret)
    if not secret:
        print("error: no TMDb API key: set TMDB_API_KEY or pass --api-key", file=sys.stderr)
        return 2

    configure_tracking()
    status = "FAILED"
    mlflow.start_run(run_name="fetch_tmdb", tags={"dataset": "tmdb"})
    try:
        mlflow.log_params(_run_params(args, credential))
        report = fetch_tmdb(
            out_dir=args.out,
            decades=args.decades,
            per_decade=args.per_decade,
            api_key=secret,
            poster_size=args.poster_size,
            api_base_url=args.api_base_url,
            image_base_url=args.image_base_url,
            timeout=args.timeout,
            max_retries=args.max_retries,
            progress=not args.no_progress,
            genres=args.genres,
        )
        _log_report(report, Path(args.out) / "labels.csv")
        status = "FINISHED"
    except TMDbError as exc:
        message = credential.scrub(str(exc))
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
