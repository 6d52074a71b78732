"""Batch prediction for the shop: ``posterml predict DIR_OR_FILES... --out genres.csv``.

The registered model is loaded in-process (``load_pipeline``, no scoring server), posters are
decoded with the same ``load_image`` as training and serving, and predictions are streamed
in batches into a csv that only appears, complete, when the run ends
(:func:`posterml.io.atomic_write`): a crash, Ctrl-C or SIGTERM never leaves a half-written
``genres.csv`` or its temp file behind.

An unreadable file (truncated JPEG, text named ``.jpg``, missing path) is never fatal: it is
printed with its reason and listed in ``<out stem>.skipped.csv`` next to the output.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from posterml.cli_args import parse_positive
from posterml.data.images import ImageDecodeError, load_image
from posterml.features.extract import default_workers, progress_bar
from posterml.io import atomic_write

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")  # the decoder's ACCEPTED_FORMATS
DEFAULT_MODEL_URI = "models:/poster-genre-classifier@champion"
SCORE_FORMAT = "{:.6f}"


@dataclass
class PredictReport:
    """What a batch prediction did: where the csv files are and what was skipped."""

    out: Path
    skipped_out: Path | None
    n_files: int
    n_predicted: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.n_predicted / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------- inputs
def collect_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to predict, in a stable order, without duplicates.

    A directory contributes its ``.jpg``/``.jpeg``/``.png``/``.webp`` files (recursively,
    sorted, any suffix case); a file is taken as given whatever its suffix, so a misnamed
    or missing file is reported as skipped rather than silently ignored.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(
                sorted(
                    p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                )
            )
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def skipped_path(out: Path) -> Path:
    """``genres.csv`` -> ``genres.skipped.csv`` (same folder)."""
    return out.with_name(f"{out.stem}.skipped{out.suffix or '.csv'}")


def _decode(path: Path, min_size: tuple[int, int] | None = None):
    """The decoded image, or the reason it is unusable (decoding errors are data, not bugs)."""
    try:
        return load_image(path, min_size=min_size)
    except ImageDecodeError as exc:
        return exc.reason


def iter_decoded(
    files: Sequence[Path],
    batch_size: int,
    workers: int | None = None,
    min_size: tuple[int, int] | None = None,
) -> Iterator[tuple[list[Path], list, list]]:
    """Yield ``(paths, images, skipped)`` per batch of input files, in input order.

    Decoding runs in a thread pool (Pillow releases the GIL); only one batch of images is
    held at a time, each decoded towards ``min_size`` (the model's input size, as the server
    and training do). ``skipped`` holds ``(path, reason)`` for the batch's bad files.
    """
    workers = workers or default_workers()
    decode = partial(_decode, min_size=min_size)
    with ThreadPoolExecutor(workers, thread_name_prefix="predict-decode") as pool:
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            ok_paths, images, skipped = [], [], []
            for path, outcome in zip(chunk, pool.map(decode, chunk), strict=True):
                if isinstance(outcome, str):
                    skipped.append((str(path), outcome))
                else:
                    ok_paths.append(path)
                    images.append(outcome)
            yield ok_paths, images, skipped


# --------------------------------------------------------------------------- outputs
@contextmanager
def atomic_csv(path: Path, header: Sequence[str]) -> Iterator[Any]:
    """A csv writer on a temp file next to ``path``, moved over ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        yield writer


def _write_skipped(out: Path, skipped: list[tuple[str, str]]) -> Path | None:
    """Write ``<out>.skipped.csv`` (file, reason); remove a stale one when nothing failed."""
    target = skipped_path(out)
    if not skipped:
        target.unlink(missing_ok=True)
        return None
    with atomic_csv(target, ["file", "reason"]) as writer:
        writer.writerows(skipped)
    return target


def _rows(paths: list[Path], frame) -> Iterator[list[str]]:
    from posterml.serving.pyfunc import SCORE_COLUMNS

    scores = frame[SCORE_COLUMNS].to_numpy()
    for path, genres, row in zip(paths, frame["genres"], scores, strict=True):
        yield [str(path), "|".join(genres), *(SCORE_FORMAT.format(v) for v in row)]


# --------------------------------------------------------------------------- prediction
def predict_files(
    paths: Iterable[str | Path],
    model_uri: str,
    out: str | Path,
    batch_size: int = 32,
    *,
    progress: bool = True,
) -> PredictReport:
    """Predict genres for image files and folders into the csv ``out``.

    ``out`` gets ``file, genres`` (names joined by ``|``) and the ``score_*`` columns, one
    row per readable image in input order; unreadable files are printed and listed in
    ``<out stem>.skipped.csv``. Tracking/registry URIs must already be configured for
    ``models:/`` URIs (the CLI does it).
    """
    from posterml.serving.pyfunc import SCORE_COLUMNS, load_pipeline

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out)
    files = collect_files(paths)
    pipeline = load_pipeline(model_uri)
    skipped: list[tuple[str, str]] = []
    n_predicted = 0
    start = time.perf_counter()
    bar = progress_bar(len(files), "predicting", progress)
    with bar, atomic_csv(out, ["file", "genres", *SCORE_COLUMNS]) as writer:
        min_size = pipeline.featurizer.image_size
        for ok_paths, images, bad in iter_decoded(files, batch_size, min_size=min_size):
            for path, reason in bad:
                bar.write(f"skipped {path}: {reason}", file=sys.stderr)
            skipped.extend(bad)
            if images:
                writer.writerows(_rows(ok_paths, pipeline.predict_frame(images)))
                n_predicted += len(images)
            bar.update(len(ok_paths) + len(bad))
    seconds = time.perf_counter() - start
    return PredictReport(
        out, _write_skipped(out, skipped), len(files), n_predicted, skipped, seconds
    )


def _handle_predict(args: argparse.Namespace) -> int:
    """CLI handler: 0 on success (even with skipped files), 1 if nothing could be predicted."""
    from posterml.tracking import configure_tracking

    configure_tracking()
    try:
        report = predict_files(
            args.paths, args.model, args.out, args.batch_size, progress=not args.no_progress
        )
    except Exception as exc:  # model cannot be loaded, output not writable: say why, no trace
        print(f"posterml predict: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {report.n_predicted} prediction(s) to {report.out} "
        f"({report.images_per_second:.1f} images/s)"
    )
    if report.skipped:
        print(f"skipped {len(report.skipped)} unreadable file(s), listed in {report.skipped_out}")
    if report.n_files and not report.n_predicted:
        print("posterml predict: no readable image among the inputs", file=sys.stderr)
        return 1
    return 0


def add_predict_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``posterml predict`` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "predict",
        help="predict genres of poster files/folders into a csv (no server)",
        description="Predict the genres of posters with a registered model, in-process. "
        "Folders are scanned for .jpg/.jpeg/.png/.webp; unreadable files are skipped "
        "and listed in <out>.skipped.csv.",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="DIR_OR_FILE", help="image files and/or folders of images"
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL_URI, help=f"model URI (default: {DEFAULT_MODEL_URI})"
    )
    parser.add_argument("--out", default="genres.csv", help="output csv (default: genres.csv)")
    parser.add_argument(
        "--batch-size", type=parse_positive, default=32, help="images per model call (default: 32)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=_handle_predict)
    return parser
