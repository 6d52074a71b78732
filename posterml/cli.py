"""posterml: the genres of movie posters, for the shop and for the experimenter.

In the shop, predict a folder of posters with the registered champion model:
  posterml predict FOLDER
                    writes genres.csv, to open in a spreadsheet. The champion lives in
                    the project's MLflow store: from any other folder, say where with
                    MLFLOW_TRACKING_URI=sqlite:////path/to/project/mlflow.db (or an
                    http:// tracking server), or give a model folder with --model PATH
  posterml review FOLDER --to SHOP
                    look at each poster in a browser, fix its genres, save into SHOP
  posterml add genres.csv --to SHOP
                    put the rows you checked (reviewed = yes) into your dataset SHOP
  posterml audit SHOP
                    list the posters of SHOP whose genres look wrong (SHOP/audit.csv),
                    worst first; review them with posterml review SHOP/audit.csv --to SHOP

To experiment, from the project folder (every run is tracked in MLflow):
  mlflow run . -e NAME --experiment-name posterml --env-manager local
                    train and tune one family; NAME is an entry point of MLproject
                    (main, resnet_svm, resnet_mlp, ensemble, finetune, compare, ...)
  posterml where    the latest runs and the command that opens the MLflow UI
  posterml register make the best balanced run the champion that predict uses
                    (--reference REF: only if it beats the champion on your reference set)
  posterml rollback put the previous champion back

On the team tracking server (mlflow server --app-name basic-auth), an admin sets up who may
do what; a refused command says which right it lacks, and exits 77:
  posterml users init FOLDER                   the server's auth config (admin password)
  posterml users add NAME --role scientist     trains and promotes (also: assistant, scorer)
"""

from __future__ import annotations

import argparse
import importlib
import sys

from posterml.io import run_interruptible
from posterml.team.refusals import model_of, refused_in_one_line

# In the order ``posterml --help`` lists them; each module has ``add_parser(subparsers)``.
COMMANDS = (
    "fetch_tmdb",
    "where",
    "register",
    "add",
    "audit",
    "review",
    "rollback",
    "users",
    "predict",
    "batch_score",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posterml",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keep the examples' layout
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:  # imported here: ``posterml --help`` loads no command's deps
        importlib.import_module(f"posterml.commands.{name}").add_parser(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    """The command; a 401/403 of the tracking server, wherever it arose, becomes one line
    naming the right the user lacks, and exit status 77 (``posterml.team.refusals``)."""
    model = getattr(args, "model_name", None) or model_of(getattr(args, "model", None))
    return refused_in_one_line(
        f"posterml {args.command}",
        lambda: args.handler(args),
        model,
        getattr(args, "experiment", None),
    )


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; Ctrl-C/SIGTERM unwind it (no temp files left) and exit 130/143."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return run_interruptible(f"posterml {args.command}", lambda: _run(args))


if __name__ == "__main__":
    raise SystemExit(main())
