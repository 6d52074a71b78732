"""argparse types for values that arrive from MLproject parameters.

MLflow passes every ``-P`` value as text: booleans as "true"/"false", and ``float``-typed
numbers possibly as "5.0". These types accept both forms and reject anything else clearly.
"""

from __future__ import annotations

import argparse


def parse_bool(text: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case)."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_whole(text: str) -> int:
    """An integer, also written as a float ("42.0")."""
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not number.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(number)


def parse_positive(text: str) -> int:
    """A whole number >= 1 (a batch size, a number of tasks)."""
    value = parse_whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
