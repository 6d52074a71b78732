"""``posterml where``: the latest runs, and how to look at them and serve the best."""

from __future__ import annotations

import argparse
from typing import Any

from posterml.names import CHAMPION_URI, ROLE_TAG, TRIAL_ROLE


def run_where(args: argparse.Namespace) -> int:
    """Print the latest runs and how to look at them."""
    import mlflow

    from posterml.tracking import configure_tracking

    uri = configure_tracking()
    runs = mlflow.search_runs(
        search_all_experiments=True,
        max_results=args.n,
        order_by=["attributes.start_time DESC"],
        filter_string=f"tags.`{ROLE_TAG}` != '{TRIAL_ROLE}'",
    )
    if runs.empty:
        print(f"No runs yet in {uri}.")
        return 0
    print(f"Latest runs in {uri}:")
    for _, run in runs.iterrows():
        f1 = run.get("metrics.test_f1_weighted")
        shown = f"  test_f1_weighted={f1:.3f}" if f1 is not None and f1 == f1 else ""
        # Runs are named for what they are ("resnet_svm · posters · 1a2b3c4d").
        print(f"  {run['run_id']}  {run.get('tags.mlflow.runName')}{shown}")
    print(
        f"\nLook at them:  .venv/bin/mlflow ui --backend-store-uri {uri}  "
        "(then open http://127.0.0.1:5000)"
    )
    print(
        "Serve the best balanced model:  posterml register  &&  "
        f"mlflow models serve -m {CHAMPION_URI} --env-manager local"
    )
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``posterml where`` to the CLI's subparsers."""
    parser = subparsers.add_parser("where", help="show the latest runs and the mlflow ui command")
    parser.add_argument("-n", type=int, default=5)
    parser.set_defaults(handler=run_where)
    return parser
