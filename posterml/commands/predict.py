"""``posterml predict DIR_OR_FILES... --out genres.csv``: the shop's genres, in a csv.

What the csv holds and how it is written: :mod:`posterml.batch.local`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from posterml.batch.local import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MODEL_URI,
    OUTPUT_FORMATS,
    PredictInputError,
    predict_files,
    review_path,
)
from posterml.batch.years import YearsError
from posterml.cli_args import parse_positive
from posterml.progress import hide_library_bars
from posterml.registry.model_source import ModelSourceError


def _handle_predict(args: argparse.Namespace) -> int:
    """CLI handler: 0 on success (even with skipped files), 1 if nothing could be predicted,
    2 if there is nothing to predict, the model cannot be loaded or the output not written."""
    from posterml.team.refusals import raise_if_refused
    from posterml.tracking import configure_tracking

    configure_tracking()
    if args.no_progress:
        hide_library_bars()
    try:
        report = predict_files(
            args.paths,
            args.model,
            args.out,
            args.batch_size,
            output_format=args.format,
            progress=not args.no_progress,
            years_csv=args.years,
            review=args.review,
            read_text=False if args.no_ocr else None,
        )
    except (ModelSourceError, PredictInputError, YearsError) as exc:
        print(f"posterml predict: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # model cannot be loaded, output not writable: say why, no trace
        raise_if_refused(exc)  # the team server's 401/403: posterml.cli names the right
        print(f"posterml predict: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {report.n_predicted} prediction(s) to {report.out} "
        f"({report.images_per_second:.1f} images/s)"
    )
    if report.skipped:
        print(f"skipped {len(report.skipped)} unreadable file(s), listed in {report.skipped_out}")
    if report.years:
        print(report.years.summary(report.years_out))
    if args.review and report.n_predicted:
        print(
            f"the {min(args.review, report.n_predicted)} to label first: {review_path(report.out)}"
        )
    if report.n_files and not report.n_predicted:
        print("posterml predict: no readable image among the inputs", file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``posterml predict`` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "predict",
        help="predict the genres of a folder of posters into a csv (no server needed)",
        description="Predict the genres of posters with the registered champion model (or "
        "any model given with --model), in-process. Folders are scanned for "
        ".jpg/.jpeg/.png/.webp. The champion lives in the project's MLflow store: set "
        "MLFLOW_TRACKING_URI to it (e.g. sqlite:////path/to/project/mlflow.db) when running "
        "from another folder. Unreadable files are skipped and listed in <out>.skipped.csv.",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="DIR_OR_FILE", help="image files and/or folders of images"
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL_URI,
        help=f"model URI or folder (default: {DEFAULT_MODEL_URI}, found through "
        "MLFLOW_TRACKING_URI)",
    )
    parser.add_argument("--out", default="genres.csv", help="output csv (default: genres.csv)")
    parser.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default="spreadsheet",
        help="spreadsheet (default): genre names (genres: asserted; maybe: worth a look), one "
        "column per genre with its probability in percent, and an error column for unreadable "
        "files; machine: genres and maybe joined by '|' and score_<genre> columns at full "
        "precision, as the scoring server returns them",
    )
    parser.add_argument(
        "--batch-size",
        type=parse_positive,
        default=DEFAULT_BATCH_SIZE,
        help=f"images per model call (default: {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--years",
        metavar="CSV",
        help="release years: a csv with file and year columns, each file its path, its path "
        "inside the scanned folder or its file name (an input csv may carry a year column "
        "itself); the model then uses the genre rates of each poster's decade. Years not used "
        "are counted and listed in <out>.year-problems.csv",
    )
    parser.add_argument(
        "--review",
        type=int,
        default=0,
        metavar="N",
        help="also write the N posters whose labels would teach the model most (uncertain "
        "and unlike each other) to <out>.review.csv",
    )
    parser.add_argument(
        "--no-ocr",
        action="store_true",
        help="for a model that reads the words on posters: skip OCR (several times faster, "
        "answers from the picture and its detail, decided by their own thresholds; see the "
        "README)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=_handle_predict)
    return parser
