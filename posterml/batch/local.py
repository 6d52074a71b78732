"""Batch prediction for the shop: ``posterml predict DIR_OR_FILES... --out genres.csv``.

The registered model is loaded in-process (``load_pipeline``, no scoring server), posters are
decoded with the same ``load_image`` as training and serving and predicted in batches, and
the csv only appears, complete, when the run ends
(:func:`posterml.io.atomic_write`): a crash, Ctrl-C or SIGTERM never leaves a half-written
``genres.csv`` or its temp file behind. Before anything is read, ``check_model_source`` makes
sure the model's store exists and knows it (one line naming ``MLFLOW_TRACKING_URI`` if not).

Two output formats:

* ``spreadsheet`` (default), for a dealer: ``file``, ``genres`` (what the model asserts:
  names, most probable first, comma-separated), ``maybe`` (genres worth a look, the same
  way; never one of ``genres``), ``year`` (when given), ``reviewed`` (empty: the dealer
  writes ``yes`` once he has checked and corrected a row, and ``posterml add`` takes only
  those rows), ``review_priority``, ``error`` (why a file could not be read; its row is
  otherwise empty), ``text`` (what OCR read, for a model that reads the words; empty
  otherwise) and one column per genre, headed by its name, holding the probability in
  whole percent ("87%", which spreadsheets read as the number 0.87). Every input file has a
  row, in input order. UTF-8 with a byte-order mark, so Excel shows accented file names
  right.
* ``machine``: ``file``, ``genres`` and ``maybe`` joined by ``|``, ``year``,
  ``review_priority``, ``text`` and the ``score_<genre>`` columns at full precision, as the scoring
  server names them; readable files only.

Release years (``--years``, or a ``year`` column of an input csv) reach the model as the
server takes them, each ``--years`` row matched to its poster by ``posterml.batch.years``;
rows matching no poster, years that are no release year and posters left without one are
counted in one line and listed in ``<out stem>.year-problems.csv``. ``review_priority``
(``posterml.evaluation.priority``) ranks all posters of a call together, so the csv is written
once all are scored; ``--review N`` writes the N first to ``<out stem>.review.csv``.

Either way an unreadable file (truncated JPEG, text named ``.jpg``, missing path) is never
fatal: it is printed with its reason and listed in ``<out stem>.skipped.csv`` next to the
output.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from posterml.features.image_stream import map_decoded
from posterml.genres import GENRES
from posterml.io import atomic_write
from posterml.names import CHAMPION_URI, PRIORITY_COLUMN, REVIEWED_COLUMN, TEXT_COLUMN
from posterml.progress import progress_bar
from posterml.registry.model_source import check_model_source

if TYPE_CHECKING:
    from posterml.batch.years import PosterYears

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")  # the decoder's ACCEPTED_FORMATS
DEFAULT_MODEL_URI = CHAMPION_URI
DEFAULT_BATCH_SIZE = 32  # images per model call
OUTPUT_FORMATS = ("spreadsheet", "machine")
# Uncertainty alone: the diversity term did not help the pooled recipe (README: vintage curve).
REVIEW_DIVERSITY = 0.0


@dataclass
class PredictReport:
    """What a batch prediction did: where the csv files are and what was skipped."""

    out: Path
    skipped_out: Path | None
    n_files: int
    n_predicted: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    years: PosterYears | None = None
    years_out: Path | None = None

    @property
    def images_per_second(self) -> float:
        return self.n_predicted / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------- inputs
class PredictInputError(ValueError):
    """Nothing sensible to do with these arguments (no image at all, ``--out`` a folder):
    said before the model is loaded or any poster decoded."""


def collect_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to predict, in a stable order, without duplicates.

    A directory contributes its ``.jpg``/``.jpeg``/``.png``/``.webp`` entries (recursively,
    sorted, any suffix case), broken symlinks included; a file is taken as given whatever
    its suffix. A misnamed, missing or dangling file is thus reported as skipped rather than
    silently ignored.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.suffix.lower() in IMAGE_SUFFIXES
                    and (p.is_file() or not p.exists())  # dangling link
                )
            )
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def check_inputs(paths: Sequence[str | Path], files: Sequence[Path], out: Path) -> None:
    """Raise :class:`PredictInputError` for arguments that cannot give a useful csv."""
    if not files:
        where = ", ".join(map(str, paths))
        raise PredictInputError(f"no {'/'.join(IMAGE_SUFFIXES)} file in {where}")
    if out.is_dir():
        raise PredictInputError(f"--out {out} is a folder; give the csv file to write")


def review_path(out: Path) -> Path:
    """``genres.csv`` -> ``genres.review.csv``: the rows to label first."""
    return out.with_name(f"{out.stem}.review{out.suffix or '.csv'}")


def skipped_path(out: Path) -> Path:
    """``genres.csv`` -> ``genres.skipped.csv`` (same folder)."""
    return out.with_name(f"{out.stem}.skipped{out.suffix or '.csv'}")


def year_problems_path(out: Path) -> Path:
    """``genres.csv`` -> ``genres.year-problems.csv``: the years that were not used."""
    return out.with_name(f"{out.stem}.year-problems{out.suffix or '.csv'}")


def iter_decoded(
    files: Sequence[Path],
    batch_size: int,
    workers: int | None = None,
    min_size: tuple[int, int] | None = None,
) -> Iterator[tuple[list[Path], list, list]]:
    """Yield ``(paths, images, skipped)`` per batch of ``batch_size`` input files, in input
    order (``posterml.features.image_stream.map_decoded``: the one decode-on-a-thread-pool).

    Only about one batch of images is held at a time, each decoded towards ``min_size`` (the
    model's input size, as the server and training do). ``skipped`` holds ``(path, reason)``
    for the batch's bad files.
    """
    ok_paths, images, skipped = [], [], []
    decoded = map_decoded(files, min_size=min_size, workers=workers, window=2 * batch_size)
    with closing(decoded):
        for item in decoded:
            if item.ok:
                ok_paths.append(files[item.index])
                images.append(item.result)
            else:
                skipped.append((item.path, item.reason))
            if len(ok_paths) + len(skipped) == batch_size:
                yield ok_paths, images, skipped
                ok_paths, images, skipped = [], [], []
    if ok_paths or skipped:
        yield ok_paths, images, skipped


# --------------------------------------------------------------------------- outputs
@contextmanager
def atomic_csv(path: Path, header: Sequence[str], encoding: str = "utf-8") -> Iterator[Any]:
    """A csv writer on a temp file next to ``path``, moved over ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        yield writer


def _write_skipped(
    out: Path, skipped: list[tuple[str, str]], target: Path | None = None
) -> Path | None:
    """Write ``<out>.skipped.csv`` (or ``target``: file, reason); remove a stale one when
    nothing failed."""
    target = target or skipped_path(out)
    if not skipped:
        target.unlink(missing_ok=True)
        return None
    with atomic_csv(target, ["file", "reason"]) as writer:
        writer.writerows(skipped)
    return target


def header(output_format: str) -> list[str]:
    """The csv columns of ``output_format`` (see the module docstring)."""
    from posterml.serving.pyfunc import SCORE_COLUMNS

    if output_format == "machine":
        return ["file", "genres", "maybe", "year", PRIORITY_COLUMN, TEXT_COLUMN, *SCORE_COLUMNS]
    if output_format == "spreadsheet":
        leading = ["file", "genres", "maybe", "year", REVIEWED_COLUMN, PRIORITY_COLUMN, "error"]
        leading.append(TEXT_COLUMN)
        return [*leading, *GENRES]
    raise ValueError(f"output format {output_format!r}: use one of {OUTPUT_FORMATS}")


def _year_text(year: float) -> str:
    return "" if year != year else str(int(year))  # NaN: unknown


def _row(path: str, tiers: _Tiers, year: float, priority: float, scores, output_format):
    """One prediction's csv row; ``scores`` in ``SCORE_COLUMNS`` order."""
    if output_format == "machine":  # repr: the shortest text that reads back exactly
        cells = [path, "|".join(tiers.genres), "|".join(tiers.maybe), _year_text(year)]
        return [*cells, f"{priority:.4f}", tiers.text] + [repr(float(p)) for p in scores]
    cells = [path, ", ".join(tiers.genres), ", ".join(tiers.maybe), _year_text(year)]
    return [*cells, "", f"{priority:.3f}", "", tiers.text] + [f"{p:.0%}" for p in scores]


def _error_row(path: str, reason: str, year: float) -> list[str]:
    """A spreadsheet row for a file that could not be read."""
    return [path, "", "", _year_text(year), "", "", reason, "", *([""] * len(GENRES))]


def expand_inputs(
    paths: Sequence[str | Path], years_csv: str | Path | None = None
) -> tuple[list[Path], PosterYears | None]:
    """The files to predict (a ``.csv`` input lists them) and their years, from csv inputs
    and ``years_csv`` matched to them (``posterml.batch.years.match_years``; its
    ``YearsError`` when a row is ambiguous or none matches). No files: no years read."""
    from posterml.batch.years import match_years, read_listing

    listed, rows = [], {}
    for path in map(Path, paths):
        if path.suffix.lower() == ".csv" and path.is_file():
            files, found = read_listing(path)
            listed += files
            rows.update(found)
        else:
            listed.append(path)
    files = collect_files(listed)
    if not files:  # check_inputs says so; a years csv cannot match nothing
        return files, None
    folders = [Path(p) for p in paths if Path(p).is_dir()]
    return files, match_years(files, folders, years_csv or None, rows)


# --------------------------------------------------------------------------- prediction
@dataclass
class _Tiers:
    """One poster's asserted genres and its maybe genres, most probable first, and what OCR
    read on it (empty for a model that does not read the words)."""

    genres: list[str]
    maybe: list[str]
    text: str = ""


@dataclass
class _Scored:
    """Every readable file's prediction, with what its review priority needs."""

    predicted: list[tuple[str, _Tiers, float]]  # (file, tiers, year or NaN)
    proba: np.ndarray
    cuts: np.ndarray
    features: np.ndarray | None
    skipped: list[tuple[str, str]]


def _years_of(files: Sequence[str | Path], years: PosterYears | None) -> np.ndarray:
    return years.of(files) if years else np.full(len(files), np.nan)


def _score_files(pipeline, files, batch_size: int, years_given, bar) -> _Scored:
    """Decode and predict ``files`` batch by batch, as the server would with their years."""
    from posterml.serving.pyfunc import SCORE_COLUMNS

    predicted, proba, cuts, features, skipped = [], [], [], [], []
    min_size = pipeline.image_size
    for ok_paths, images, bad in iter_decoded(files, batch_size, min_size=min_size):
        for path, reason in bad:
            bar.write(f"skipped {path}: {reason}", file=sys.stderr)
        skipped.extend(bad)
        if images:
            years = _years_of(ok_paths, years_given)
            known = None if np.isnan(years).all() else years  # none: the server's path
            X = pipeline.features(images)
            frame = pipeline.predict_frame(images, known, X)
            proba.append(frame[SCORE_COLUMNS].to_numpy(dtype=float))
            cuts.append(pipeline.decision.thresholds_for(len(images), known))
            if REVIEW_DIVERSITY > 0:  # the diversity term needs every poster's features
                features.append(X)
            texts = frame[TEXT_COLUMN] if TEXT_COLUMN in frame else [""] * len(frame)
            tiers = map(_Tiers, frame["genres"], frame["maybe"], texts)
            predicted += zip(map(str, ok_paths), tiers, years, strict=True)
        bar.update(len(ok_paths) + len(bad))
    empty = np.zeros((0, len(SCORE_COLUMNS)))
    return _Scored(
        predicted,
        np.vstack(proba) if proba else empty,
        np.vstack(cuts) if cuts else empty,
        np.vstack(features) if features else None,
        skipped,
    )


def predict_files(
    paths: Iterable[str | Path],
    model_uri: str,
    out: str | Path,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    output_format: str = "spreadsheet",
    progress: bool = True,
    years_csv: str | Path | None = None,
    review: int = 0,
    read_text: bool | None = None,
) -> PredictReport:
    """Predict genres for image files and folders into the csv ``out``.

    ``output_format`` is ``spreadsheet`` or ``machine`` (module docstring); unreadable files
    are printed and listed in ``<out stem>.skipped.csv``. Release years from a csv input or
    ``years_csv`` are used as the server uses them; the years not used are listed in
    ``<out stem>.year-problems.csv``. Each row carries its review priority
    (``posterml.evaluation.priority``); ``review`` > 0 also writes that many rows, highest
    priority first, to ``<out stem>.review.csv``. ``read_text`` False scores a model that
    reads the words from the picture alone (``posterml.serving.pyfunc.apply_ocr_switch``).
    Tracking/registry URIs must already be configured for ``models:/`` and ``runs:/`` URIs
    (the CLI does it); a store that does not exist or lacks the model raises
    :class:`ModelSourceError` and is never created.
    """
    from posterml.evaluation.priority import review_priority
    from posterml.serving.pyfunc import load_pipeline

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    columns = header(output_format)
    out = Path(out)
    paths = list(paths)
    files, years = expand_inputs(paths, years_csv)
    check_inputs(paths, files, out)
    check_model_source(model_uri)
    order = {str(path): i for i, path in enumerate(files)}
    pipeline = load_pipeline(model_uri, read_text)
    start = time.perf_counter()
    # A spreadsheet is opened by Excel, which reads UTF-8 only after a byte-order mark.
    encoding = "utf-8-sig" if output_format == "spreadsheet" else "utf-8"
    with (
        progress_bar(len(files), "predicting", progress) as bar,
        atomic_csv(out, columns, encoding) as writer,
    ):
        scored = _score_files(pipeline, files, batch_size, years, bar)
        skipped = scored.skipped
        priority = review_priority(
            scored.proba, scored.cuts, scored.features, diversity=REVIEW_DIVERSITY
        )
        rows = [
            (path, _row(path, tiers, year, p, s, output_format), p)
            for (path, tiers, year), p, s in zip(
                scored.predicted, priority, scored.proba, strict=True
            )
        ]
        if output_format == "spreadsheet":  # every input gets its row, in input order
            year_list = _years_of([p for p, _ in skipped], years)
            rows += [
                (p, _error_row(p, r, y), -1.0) for (p, r), y in zip(skipped, year_list, strict=True)
            ]
        rows.sort(key=lambda item: order[item[0]])
        writer.writerows(row for _, row, _ in rows)
    if review:
        best = sorted((item for item in rows if item[2] >= 0), key=lambda item: -item[2])
        with atomic_csv(review_path(out), columns, encoding) as writer:
            writer.writerows(row for _, row, _ in best[:review])
    problems = years.problems() if years else []
    years_out = _write_skipped(out, problems, year_problems_path(out))
    seconds = time.perf_counter() - start
    return PredictReport(
        out,
        _write_skipped(out, skipped),
        len(files),
        len(scored.predicted),
        skipped,
        seconds,
        years,
        years_out,
    )
