"""``posterml rollback``: put the previous champion back."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from posterml.names import MODEL_NAME

DESCRIPTION = "move @champion back to @previous (the champion before the last promotion)"


def run_rollback(args: argparse.Namespace) -> int:
    """0 when @champion moved back, 1 when there is nothing to roll back to."""
    from posterml.registry.versions import rollback
    from posterml.tracking import configure_tracking

    configure_tracking()
    try:
        result = rollback(args.model_name)
    except LookupError as exc:
        print(f"posterml rollback: {exc}", file=sys.stderr)
        return 1
    print(result.message)
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("rollback", help=DESCRIPTION, description=DESCRIPTION)
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.set_defaults(handler=run_rollback)
    return parser
