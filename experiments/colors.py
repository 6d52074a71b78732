"""MLproject entry point ``colors``: dominant poster colours by genre and decade.

    mlflow run . -e colors -P data=../shared/posters --env-manager local
    python -m experiments.colors --data ../shared/posters --n-colors 5 --drop-grays true

All logic lives in :func:`posterml.studies.colors.run_color_study`; this script only parses
arguments, points MLflow at the tracking store and prints the run id.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from posterml.studies.colors import run_color_study
from posterml.tracking import configure_tracking


def _bool(value: str) -> bool:
    """MLproject passes booleans as text: accept true/false, yes/no, 1/0."""
    lowered = value.strip().lower()
    if lowered in {"true", "yes", "1"}:
        return True
    if lowered in {"false", "no", "0"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _whole(value: str) -> int:
    """An integer, also written as a float: MLproject ``float`` parameters may arrive as 5.0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not number.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}")
    return int(number)


def _optional_whole(value: str) -> int | None:
    """A whole number, or none/0/empty for "no limit" (MLproject parameters can't be omitted)."""
    if value.strip().lower() in {"", "none"}:
        return None
    return _whole(value) or None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default="synthetic",
        help='"synthetic" or a folder with labels.csv (e.g. ../shared/posters)',
    )
    parser.add_argument("--n-colors", type=_whole, default=5, help="colours per palette")
    parser.add_argument(
        "--drop-grays", type=_bool, default=True, help="ignore black, white and grays (true/false)"
    )
    parser.add_argument(
        "--max-posters",
        type=_optional_whole,
        default=None,
        help="analyse a random sample of at most this many posters",
    )
    parser.add_argument("--seed", type=_whole, default=0, help="sampling and k-means seed")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_tracking()
    run_id = run_color_study(
        data=args.data,
        n_colors=args.n_colors,
        drop_grays=args.drop_grays,
        max_posters=args.max_posters,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print(run_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
