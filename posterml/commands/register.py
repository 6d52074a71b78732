"""``register``: one command, two doors (``posterml register`` and the MLproject entry point
``mlflow run . -e register``), one set of flags.

Under ``mlflow run`` the register run is named after what it did and carries the message.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from posterml.cli_args import parse_bool
from posterml.names import DEFAULT_OBJECTIVE, MODEL_NAME, REGISTER_ROLE, ROLE_TAG

DESCRIPTION = "Register the best trustworthy balanced run's model as @champion."


def add_register_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--experiment",
        default="current",
        help="experiment name or id to search (default: the one this run is in, else Default)",
    )
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument("--metric", default=DEFAULT_OBJECTIVE, help="the val_ metric to rank by")
    parser.add_argument(
        "--balanced-only",
        type=parse_bool,
        default=True,
        help="only runs whose classifier reweights rare genres (default true)",
    )
    parser.add_argument(
        "--any-dataset",
        type=parse_bool,
        default=False,
        help="compare runs on any data (default: only the data of the latest finished run)",
    )
    parser.add_argument(
        "--reference",
        default="",
        metavar="FOLDER",
        help="a labelled folder kept for judging, never trained on: the new version is scored "
        "on it beside @champion, as the server scores, and becomes champion only if it passes "
        "the promotion rules (else it stays @challenger). Exit 0 promoted or unchanged, 1 not "
        "promoted, 2 the run cannot be judged (it trained on reference posters)",
    )
    return parser


def run_register(args: argparse.Namespace) -> int:
    """Register, print what happened; 0 when a champion exists afterwards, else 1."""
    import mlflow

    from posterml.registry.promotion import register_best
    from posterml.tracking import configure_tracking

    configure_tracking()
    if args.reference:
        from posterml.data.dataset import DatasetError
        from posterml.registry.promotion import PromotionError, register_with_reference

        try:
            result = register_with_reference(
                args.reference,
                args.experiment,
                args.model_name,
                args.metric,
                args.balanced_only,
                any_dataset=args.any_dataset,
            )
        except (PromotionError, DatasetError) as exc:
            print(f"posterml register: {exc}", file=sys.stderr)
            return 2
    else:
        result = register_best(
            args.experiment,
            args.model_name,
            args.metric,
            args.balanced_only,
            any_dataset=args.any_dataset,
        )
    print(result.message)
    if os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run`: say on the run what happened
        did = (
            f"v{result.version} is champion"
            if result.changed
            else (f"kept v{result.version}" if result.version else "nothing registered")
        )
        with mlflow.start_run():
            mlflow.set_tags(
                {
                    "mlflow.runName": f"register · {did}",
                    "mlflow.note.content": result.message,
                    ROLE_TAG: REGISTER_ROLE,
                    "registered_version": result.version or "",
                    "registered_from_run": result.run_id or "",
                    "registry_changed": str(result.changed).lower(),
                }
            )
    return 0 if result.version and not result.refused else 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``posterml register`` to the CLI's subparsers."""
    parser = subparsers.add_parser("register", help=DESCRIPTION, description=DESCRIPTION)
    add_register_arguments(parser).set_defaults(handler=run_register)
    return parser
