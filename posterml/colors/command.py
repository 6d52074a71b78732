"""The command line of the ``colors`` entry point: flags in, one colour-study run out.

All logic lives in :func:`posterml.colors.study.run_color_study`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from posterml.cli_args import parse_bool, parse_whole
from posterml.colors.study import run_color_study
from posterml.data.dataset import DatasetError
from posterml.tracking import configure_tracking


def _optional_whole(value: str) -> int | None:
    """A whole number, or none/0/empty for "no limit" (MLproject parameters can't be omitted)."""
    if value.strip().lower() in {"", "none"}:
        return None
    return parse_whole(value) or None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.colors",
        description="Dominant poster colours by genre and decade, as an MLflow run.",
    )
    parser.add_argument(
        "--data",
        default="synthetic",
        help='"synthetic" or a folder with labels.csv (e.g. ../shared/posters)',
    )
    parser.add_argument("--n-colors", type=parse_whole, default=5, help="colours per palette")
    parser.add_argument(
        "--drop-grays",
        type=parse_bool,
        default=True,
        help="ignore black, white and grays (true/false)",
    )
    parser.add_argument(
        "--max-posters",
        type=_optional_whole,
        default="0",
        help="analyse a random sample of at most this many posters (0: all)",
    )
    parser.add_argument("--seed", type=parse_whole, default=0, help="sampling and k-means seed")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_tracking()
    try:
        run_id = run_color_study(
            data=args.data,
            n_colors=args.n_colors,
            drop_grays=args.drop_grays,
            max_posters=args.max_posters,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except DatasetError as exc:  # an unusable dataset: one line and status 2, no traceback
        print(f"posterml colors: {exc}", file=sys.stderr)
        return 2
    print(run_id)
    return 0
