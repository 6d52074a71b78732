"""``python -m experiments.run NAME``: the one entry of every experiment entry point."""

from __future__ import annotations

import sys
from functools import partial

from posterml.io import run_interruptible
from posterml.modeling.cli import ENTRY_POINTS, family_of, main
from posterml.modeling.compare import main as compare


def run_entry_point(argv: list[str]) -> int:
    """``NAME [--knob VALUE ...]``: run the experiment entry point NAME. Ctrl-C/SIGTERM
    unwind it (MLflow runs end, temp files go) and exit 130/143."""
    if not argv or argv[0] not in ENTRY_POINTS:
        print(
            f"usage: python -m experiments.run NAME [--knob VALUE ...]; NAME is one of "
            f"{', '.join(ENTRY_POINTS)}",
            file=sys.stderr,
        )
        return 2
    name, rest = argv[0], argv[1:]
    if name == "compare":
        return run_interruptible(name, partial(compare, rest))
    return run_interruptible(name, partial(main, family_of(name), rest, name))
