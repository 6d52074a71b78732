"""``posterml review SOURCE --to DATASET``: the review page for the dealer's assistant."""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from posterml.commands.add import REFERENCE_ENV
from posterml.names import CHAMPION_URI

DESCRIPTION = "check and label posters in a browser; every save is added to the dataset"
HELP = """Serve a page where posters are reviewed one by one, in review-priority order: the
model's genres come ticked (its maybe genres marked), a key toggles each genre, Enter saves
into DATASET (as `posterml add --replace` would) and moves on, z undoes the last save, s
skips, arrows move. SOURCE is a folder of images (predicted first with the champion that
MLFLOW_TRACKING_URI points to; with no model the page still opens, every genre unticked) or
a `posterml predict` csv. Reopening resumes at the first poster not yet saved. Listens on
127.0.0.1; another --host must be asked for and then needs the printed token."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_review(args: argparse.Namespace) -> int:
    """Serve the page until stopped; 1 when the source or dataset is unusable."""
    import uvicorn

    from posterml.data.candidates import AddError
    from posterml.review.app import build_app
    from posterml.review.queue import queue_from_csv, queue_from_folder
    from posterml.tracking import configure_tracking

    configure_tracking()
    source, dataset = Path(args.source), Path(args.to).expanduser().resolve()
    reference = Path(args.reference) if args.reference else None
    try:
        if source.is_dir():
            queue, left_out = queue_from_folder(source, dataset, args.model, args.years, reference)
        elif source.is_file():
            if args.years:  # the csv's year column is what its genres were predicted with
                raise AddError(f"--years is for a folder: {source} carries its years already")
            queue, left_out = queue_from_csv(source, dataset, reference)
        else:
            raise AddError(f"{source}: no such folder or csv")
    except (AddError, ValueError) as exc:
        print(f"posterml review: {exc}", file=sys.stderr)
        return 1
    for reason in left_out:
        print(f"left out {reason}", file=sys.stderr)
    if queue.years:  # no --out to list them in: each year not used gets its line
        for file, reason in queue.years.problems():
            print(f"year not used: {file}: {reason}", file=sys.stderr)
        print(queue.years.summary())
    loopback = is_loopback(args.host)
    token = None if loopback else (args.token or secrets.token_urlsafe(24))
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{args.port}/" + (f"?token={token}" if token else "")
    print(f"{len(queue.posters)} poster(s) to review, {queue.n_reviewed} already in {dataset}")
    print(queue.note)
    print(f"review page: {url}", flush=True)
    config = uvicorn.Config(
        build_app(queue, token=token, loopback=loopback),
        host=args.host,
        port=args.port,
        log_level="warning",
        limit_concurrency=64,  # a page and its image per tab: a few at a time
        timeout_keep_alive=5,
    )
    uvicorn.Server(config).run()
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("review", help=DESCRIPTION, description=HELP)
    parser.add_argument("source", metavar="SOURCE", help="a folder of images or a predict csv")
    parser.add_argument("--to", required=True, metavar="DATASET", help="the dataset folder")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1); any other needs the printed token",
    )
    parser.add_argument("--token", default="", help="the token to require off loopback")
    parser.add_argument("--model", default=CHAMPION_URI, help="the model that ticks genres")
    parser.add_argument(
        "--years",
        metavar="CSV",
        help="a folder's release years (file,year columns), matched as posterml predict "
        "matches them; the page shows the year the model used",
    )
    parser.add_argument(
        "--reference",
        default=os.environ.get(REFERENCE_ENV, ""),
        metavar="FOLDER",
        help=f"the reference set: its posters are refused (default: ${REFERENCE_ENV})",
    )
    parser.set_defaults(handler=run_review)
    return parser
