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


# --------------------------------------------------------------------------- mlflow run
# Every MLproject command is ``python -m experiments.NAME --params-from-run``: MLflow logs each
# parameter of the entry point (the user's -P values and the defaults) on the run it starts
# before it runs the command, so the script reads them back from that run instead of the
# MLproject spelling out a ``--flag {value}`` pair per parameter.
FROM_RUN = "--params-from-run"


def argv_from_run(positionals: tuple[str, ...] = ()) -> list[str]:
    """The parameters of the run ``mlflow run`` started (``$MLFLOW_RUN_ID``) as arguments:
    ``n_trials`` -> ``--n-trials VALUE``; the parameters named in ``positionals`` come first,
    as bare values."""
    import os
    import shlex

    import mlflow

    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        raise SystemExit(f"{FROM_RUN}: no MLFLOW_RUN_ID; this flag is for `mlflow run`")
    params = mlflow.MlflowClient().get_run(run_id).data.params
    # MLflow logs each value shell-quoted, as it substitutes it into a command ("" is
    # logged as '', a path with a space as 'my posters'); shlex undoes exactly that.
    values = {key: " ".join(shlex.split(value)) for key, value in params.items()}
    argv = [values.pop(name) for name in positionals if name in values]
    for key, value in values.items():
        argv += [f"--{key.replace('_', '-')}", value]
    return argv


def resolve_argv(argv: list[str] | None = None, positionals: tuple[str, ...] = ()) -> list[str]:
    """``argv`` (default ``sys.argv[1:]``), with ``--params-from-run`` replaced by the run's
    parameters (``argv_from_run``); other arguments are kept after them."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if FROM_RUN not in argv:
        return argv
    return argv_from_run(positionals) + [a for a in argv if a != FROM_RUN]
