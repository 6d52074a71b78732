"""The colour study: which colours do posters of each genre and decade use?

One MLflow run (named ``colors · <dataset> · <run id>``, tags ``family`` and
``posterml.role`` both ``colors``) holds everything: the two figures, a per-poster table
of dominant colours (ids and hex codes only: never poster pixels, which are copyrighted), the
aggregate palette of every genre x decade cell, and the list of unreadable images.
"""

from __future__ import annotations

import io
import time

import mlflow
import numpy as np
import pandas as pd

from posterml.colors.figures import plot_colors_by_genre, plot_colors_by_genre_decade
from posterml.colors.palettes import (
    GRAY_TOLERANCE,
    THUMBNAIL_SIZE,
    Palette,
    aggregate_palette,
    is_gray,
    palettes,
    to_hex,
)
from posterml.data.dataset import PosterDataset
from posterml.data.sources import load_dataset
from posterml.genres import GENRES
from posterml.names import COLORS_ROLE, DATASET_HASH_TAG, DATASET_TAG, FAMILY_TAG, ROLE_TAG
from posterml.tracking import log_new_params

# Posters before 1970 are few (under 600 of 5,533 in ../shared/posters): one column keeps
# their cells from being mostly empty or single-poster noise.
FIRST_DECADE = 1970


def decade_label(year: int, first_decade: int = FIRST_DECADE) -> str:
    """``1987`` -> ``"1980s"``; anything before ``first_decade`` -> ``"<1970"``."""
    if year < first_decade:
        return f"<{first_decade}"
    return f"{year // 10 * 10}s"


def decade_order(years: np.ndarray, first_decade: int = FIRST_DECADE) -> list[str]:
    """The decade labels present in ``years``, oldest first."""
    present = sorted({max(int(y) // 10 * 10, first_decade - 10) for y in years})
    return [decade_label(d, first_decade) for d in present]


def poster_table(dataset: PosterDataset, found: list[Palette | None]) -> pd.DataFrame:
    """One row per readable poster: id, year, decade, genres and its palette."""
    frame = dataset.frame[["poster_id", "year", "genres"]].copy()
    frame["palette"] = pd.Series(found, index=frame.index, dtype=object)
    frame = frame[frame["palette"].notna()].reset_index(drop=True)
    frame["decade"] = [decade_label(y) for y in frame["year"]]
    return frame


def genre_decade_palettes(table: pd.DataFrame, n_colors: int = 5, seed: int = 0) -> pd.DataFrame:
    """Aggregate palette of every (genre, decade) cell, all combinations, empty ones too.

    Columns ``genre``, ``decade``, ``n`` and ``palette``; genres in ``GENRES`` order, decades
    oldest first (the order the grid figure draws them in).
    """
    rows = []
    for genre in GENRES:
        in_genre = table[table["genres"].map(lambda names, g=genre: g in names)]
        for decade in decade_order(table["year"].to_numpy()):
            cell = in_genre[in_genre["decade"] == decade]
            palette = aggregate_palette(cell["palette"], n_colors=n_colors, seed=seed)
            rows.append({"genre": genre, "decade": decade, "n": len(cell), "palette": palette})
    return pd.DataFrame(rows, columns=["genre", "decade", "n", "palette"])


def _palette_csv(table: pd.DataFrame) -> str:
    """Per-poster colours as CSV: ids and hex codes with shares, no pixels."""
    out = pd.DataFrame(
        {
            "poster_id": table["poster_id"],
            "year": table["year"],
            "genres": table["genres"].map("|".join),
            "dominant": table["palette"].map(lambda p: to_hex(p[0][0])),
            "colors": table["palette"].map(lambda p: " ".join(to_hex(rgb) for rgb, _ in p)),
            "shares": table["palette"].map(lambda p: " ".join(f"{s:.3f}" for _, s in p)),
        }
    )
    return _to_csv(out)


def _cells_csv(cells: pd.DataFrame) -> str:
    """The grid figure's numbers, so palettes can be compared without reading pixels."""
    out = cells[["genre", "decade", "n"]].copy()
    out["colors"] = cells["palette"].map(lambda p: " ".join(to_hex(rgb) for rgb, _ in p))
    out["shares"] = cells["palette"].map(lambda p: " ".join(f"{s:.3f}" for _, s in p))
    return _to_csv(out)


def _to_csv(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()


def _skipped_csv(dataset: PosterDataset, skipped: list[tuple[str, str]]) -> str:
    """Unreadable images with their poster ids and the decoder's reason."""
    id_by_path = dict(zip(dataset.image_paths, dataset.ids, strict=True))
    out = pd.DataFrame(
        [(id_by_path.get(path, ""), path, reason) for path, reason in skipped],
        columns=["poster_id", "image", "reason"],
    )
    return _to_csv(out)


def run_color_study(
    data: str = "synthetic",
    n_colors: int = 5,
    drop_grays: bool = True,
    max_posters: int | None = None,
    seed: int = 0,
    gray_tolerance: float = GRAY_TOLERANCE,
    progress: bool = True,
) -> str:
    """Compute every poster's palette, log figures and tables to a new MLflow run; its id.

    The caller sets up tracking (``configure_tracking``); under ``mlflow run`` the run the
    project started is the one continued. Unreadable images are skipped, counted in
    ``n_skipped`` and listed in ``skipped_images.csv``.
    """
    dataset = load_dataset(data)
    with mlflow.start_run() as run:
        run_id = run.info.run_id
        # Named for what it is, also under `mlflow run` (which starts the run unnamed).
        mlflow.set_tag("mlflow.runName", f"colors · {dataset.name} · {run_id[:8]}")
        mlflow.set_tags(
            {
                ROLE_TAG: COLORS_ROLE,
                FAMILY_TAG: "colors",
                DATASET_TAG: dataset.name,
                DATASET_HASH_TAG: dataset.content_hash,
            }
        )
        log_new_params(
            {
                "data": data,
                "n_colors": n_colors,
                "drop_grays": drop_grays,
                "gray_tolerance": gray_tolerance,
                "max_posters": max_posters,
                "seed": seed,
                "thumbnail_size": THUMBNAIL_SIZE,
                "first_decade": FIRST_DECADE,
            },
        )
        sample = dataset.sample(max_posters, seed)
        start = time.perf_counter()
        found, skipped = palettes(
            sample.image_paths,
            n_colors=n_colors,
            drop_grays=drop_grays,
            gray_tolerance=gray_tolerance,
            progress=progress,
        )
        seconds = time.perf_counter() - start
        table = poster_table(sample, found)
        _log_results(table, sample, skipped, n_colors, seed, gray_tolerance)
        mlflow.log_metrics(
            {
                "n_posters": len(table),
                "n_skipped": len(skipped),
                "seconds": seconds,
                "images_per_second": len(sample) / seconds if seconds > 0 else 0.0,
                "share_gray_dominant": _gray_share(table, gray_tolerance),
            }
        )
        return run_id


def _gray_share(table: pd.DataFrame, gray_tolerance: float) -> float:
    """Fraction of posters whose dominant colour is a gray (all-gray posters with drop_grays)."""
    if table.empty:
        return 0.0
    return float(table["palette"].map(lambda p: is_gray(p[0][0], gray_tolerance)).mean())


def _log_results(
    table: pd.DataFrame,
    sample: PosterDataset,
    skipped: list[tuple[str, str]],
    n_colors: int,
    seed: int,
    gray_tolerance: float,
) -> None:
    """Figures and CSV tables of one study into the active run."""
    cells = genre_decade_palettes(table, n_colors=n_colors, seed=seed)
    suffix = f" \u2014 dataset {sample.name!r}, {len(table):,} posters"
    mlflow.log_figure(
        plot_colors_by_genre(
            table, gray_tolerance, title="Dominant poster colour by genre" + suffix
        ),
        "colors_by_genre.png",
    )
    mlflow.log_figure(
        plot_colors_by_genre_decade(
            cells, title=f"Top {n_colors} poster colours by genre and decade" + suffix
        ),
        "colors_by_genre_decade.png",
    )
    mlflow.log_text(_palette_csv(table), "poster_colors.csv")
    mlflow.log_text(_cells_csv(cells), "colors_by_genre_decade.csv")
    if skipped:
        mlflow.log_text(_skipped_csv(sample, skipped), "skipped_images.csv")
        print(f"skipped {len(skipped)} unreadable image(s): see skipped_images.csv")
