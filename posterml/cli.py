"""The ``posterml`` command: data ingestion, batch prediction (in-process or on Spark) and
housekeeping.

Experiments themselves run through ``mlflow run . -e NAME`` (see MLproject); this command
covers what is not an experiment.
"""

from __future__ import annotations

import argparse
import sys

from posterml.io import run_interruptible


def _where(args: argparse.Namespace) -> int:
    """Print the latest runs and how to look at them."""
    import mlflow

    from posterml.tracking import configure_tracking

    uri = configure_tracking()
    runs = mlflow.search_runs(
        search_all_experiments=True,
        max_results=args.n,
        order_by=["attributes.start_time DESC"],
        filter_string="tags.`posterml.role` != 'trial'",
    )
    if runs.empty:
        print(f"No runs yet in {uri}.")
        return 0
    print(f"Latest runs in {uri}:")
    for _, run in runs.iterrows():
        f1 = run.get("metrics.test_f1_weighted")
        shown = f"test_f1_weighted={f1:.3f}" if f1 == f1 and f1 is not None else ""
        print(
            f"  {run['run_id']}  {run.get('tags.family') or run.get('tags.mlflow.runName')}"
            f"  dataset={run.get('tags.dataset')}  {shown}"
        )
    print(
        f"\nLook at them:  .venv/bin/mlflow ui --backend-store-uri {uri}  "
        "(then open http://127.0.0.1:5000)"
    )
    print(
        "Serve the best balanced model:  mlflow run . -e register --env-manager local  &&  "
        "mlflow models serve -m models:/poster-genre-classifier@champion --env-manager local"
    )
    return 0


def _register(args: argparse.Namespace) -> int:
    from posterml.serving.registry import register_best
    from posterml.tracking import configure_tracking

    configure_tracking()
    result = register_best(args.experiment, args.model_name, args.metric, not args.any)
    print(result.message)
    return 0 if result.version else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="posterml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser(
        "fetch-tmdb",
        add_help=False,
        help="download posters + genres from TMDb into a folder dataset",
    )
    fetch.set_defaults(handler=None)

    where = sub.add_parser("where", help="show the latest runs and the mlflow ui command")
    where.add_argument("-n", type=int, default=5)
    where.set_defaults(handler=_where)

    register = sub.add_parser("register", help="register the best balanced run as @champion")
    register.add_argument("--experiment", default="Default")
    register.add_argument("--model-name", default="poster-genre-classifier")
    register.add_argument("--metric", default="val_f1_weighted")
    register.add_argument("--any", action="store_true", help="consider unbalanced runs too")
    register.set_defaults(handler=_register)

    from posterml.serving.batch import add_batch_score_parser
    from posterml.serving.predict import add_predict_parser

    add_predict_parser(sub)
    add_batch_score_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; Ctrl-C/SIGTERM unwind it (no temp files left) and exit 130/143."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "fetch-tmdb":  # its own parser, shared with the MLproject script
        from posterml.data.tmdb import cli_main

        return cli_main(argv[1:])
    args = build_parser().parse_args(argv)
    return run_interruptible(f"posterml {args.command}", lambda: args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
