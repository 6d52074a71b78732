"""``posterml add SOURCE... --to DATASET``: the dealer's labelled posters into a dataset.

SOURCE is a folder in the dataset format (``labels.csv`` + images), a ``posterml predict``
csv whose checked rows say ``yes`` in its ``reviewed`` column, or image files (and folders
of them) that share the genres of ``--genres`` and the year of ``--year``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from posterml.data.additions import add_posters
from posterml.data.candidates import (
    AddError,
    Candidate,
    candidates_from_folder,
    candidates_from_images,
    candidates_from_reviewed_csv,
)

REFERENCE_ENV = "POSTERML_REFERENCE"
DESCRIPTION = "add labelled posters to a folder dataset (all or nothing, never twice)"
HELP = """Add the dealer's labelled posters to a folder dataset: every row is checked before
anything is written, the same image is never added twice, and a poster of the reference
set (--reference) is refused. SOURCE is a folder with labels.csv and images, a
`posterml predict` csv whose checked rows say yes in its reviewed column (with a year), or
image files and folders that share --genres and --year. What was added, and when, is
appended to DATASET/additions.csv."""


def gather(args: argparse.Namespace) -> tuple[list[Candidate], int, list[str]]:
    """Candidates from every SOURCE, posters not marked reviewed, and problems found."""
    from posterml.batch.local import collect_files

    candidates: list[Candidate] = []
    problems: list[str] = []
    not_reviewed = 0
    images: list[Path] = []
    for source in map(Path, args.sources):
        if source.is_dir() and (source / "labels.csv").is_file():
            candidates += candidates_from_folder(source)
        elif source.suffix.lower() == ".csv":
            found, left_out, bad = candidates_from_reviewed_csv(source)
            candidates += found
            not_reviewed += left_out
            problems += bad
        else:
            images += collect_files([source])
    if images:
        if not args.genres:
            problems.append(
                f"{len(images)} image file(s) given without --genres (and --year): say what "
                "they are, or give a predict csv or a folder with labels.csv"
            )
        else:
            found, bad = candidates_from_images(images, args.genres, args.year)
            candidates += found
            problems += bad
    return candidates, not_reviewed, problems


def run_add(args: argparse.Namespace) -> int:
    """0 when the dataset holds every poster given, 1 when nothing was added for a problem."""
    try:
        candidates, not_reviewed, problems = gather(args)
        report = add_posters(
            candidates,
            args.to,
            replace=args.replace,
            reference=args.reference or None,
            problems=problems,
            not_reviewed=not_reviewed,
            dry_run=args.dry_run,
        )
    except AddError as exc:
        print(f"posterml add: {exc}", file=sys.stderr)
        return 1
    prefix = "dry run: would have " if args.dry_run else ""
    print(prefix + report.summary())
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("add", help=DESCRIPTION, description=HELP)
    parser.add_argument("sources", nargs="+", metavar="SOURCE")
    parser.add_argument("--to", required=True, metavar="DATASET", help="the dataset folder")
    parser.add_argument("--genres", help="for image files: their genres, e.g. 'Western,Drama'")
    parser.add_argument("--year", help="for image files: their release year")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="a poster already in the dataset with other genres or year takes the new ones "
        "(without it, that is a conflict and nothing is added)",
    )
    parser.add_argument(
        "--reference",
        default=os.environ.get(REFERENCE_ENV, ""),
        metavar="FOLDER",
        help="the reference set kept for judging models: its posters are refused "
        f"(default: ${REFERENCE_ENV})",
    )
    parser.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
    parser.set_defaults(handler=run_add)
    return parser
