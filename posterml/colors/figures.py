"""Figures of the colour study: dominant colour by genre, and top colours by genre and decade.

Both figures draw aggregate colours only (no poster pixels), so they can be logged and shared
even though the posters themselves are copyrighted. They use the Agg backend through the
object-oriented API (no pyplot state), so they work headless and in threads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from posterml.colors.palettes import GRAY_TOLERANCE, RGB, hue, is_gray
from posterml.genres import GENRES

STRIP_WIDTH = 600  # samples per genre strip: enough for smooth hue bands at any n
HUE_FAMILIES = 12  # hue bins: colours of one family sit together, ordered by lightness
_RED_OFFSET = 1 / 24  # rotate the wheel so reds just below hue 1.0 join reds at 0.0
_GRAY_BG = "#f4f4f4"


def _new_figure(width: float, height: float) -> Figure:
    """A figure on an Agg canvas (headless; no global pyplot state to leak between runs)."""
    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _hue_order_key(rgb: RGB, gray_tolerance: float) -> tuple[int, int, float]:
    """Sort key: colours by hue family then lightness, grays last from black to white."""
    lightness = sum(rgb) / (3 * 255)
    if is_gray(rgb, gray_tolerance):
        return (1, 0, lightness)
    family = int(((hue(rgb) + _RED_OFFSET) % 1.0) * HUE_FAMILIES)
    return (0, family, lightness)


def hue_strip(
    colors: Sequence[RGB], width: int = STRIP_WIDTH, gray_tolerance: float = GRAY_TOLERANCE
) -> np.ndarray:
    """A (1, width, 3) float image: ``colors`` sorted by hue, resampled to a fixed width.

    Each colour takes width in proportion to how many posters have it, so a strip reads as
    a distribution whatever the genre's size.
    """
    if not colors:
        return np.ones((1, width, 3))
    ordered = sorted(colors, key=lambda rgb: _hue_order_key(rgb, gray_tolerance))
    picks = np.minimum((np.arange(width) + 0.5) * len(ordered) / width, len(ordered) - 1)
    return np.asarray([ordered[int(i)] for i in picks], dtype=float)[None] / 255.0


def _genre_rows(table: pd.DataFrame) -> list[tuple[str, list[RGB]]]:
    """("All posters", dominant colours) then one row per genre in ``GENRES`` order."""
    dominant = table["palette"].map(lambda palette: palette[0][0])
    rows = [("All posters", dominant.tolist())]
    for genre in GENRES:
        has_genre = table["genres"].map(lambda names, g=genre: g in names)
        rows.append((genre, dominant[has_genre].tolist()))
    return rows


def plot_colors_by_genre(
    table: pd.DataFrame, gray_tolerance: float = GRAY_TOLERANCE, title: str | None = None
) -> Figure:
    """Distribution of posters' dominant colours per genre, one hue-sorted strip per genre.

    ``table`` needs ``genres`` (list of names) and ``palette`` (largest share first) per
    poster. A poster with several genres counts in each. The share of posters whose
    dominant colour is a gray is printed on the right.
    """
    rows = _genre_rows(table)
    figure = _new_figure(12, 0.42 * len(rows) + 1.6)
    axes = figure.subplots(len(rows), 1, squeeze=False)[:, 0]
    figure.subplots_adjust(
        left=0.17,
        right=0.8,
        top=1 - 0.9 / figure.get_figheight(),
        bottom=0.5 / figure.get_figheight(),
        hspace=0.35,
    )
    for ax, (name, colors) in zip(axes, rows, strict=True):
        ax.imshow(
            hue_strip(colors, gray_tolerance=gray_tolerance), aspect="auto", interpolation="nearest"
        )
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("#bbbbbb")
        weight = "bold" if name == "All posters" else "normal"
        ax.text(
            -0.015,
            0.5,
            name,
            transform=ax.transAxes,
            ha="right",
            va="center",
            fontsize=11,
            fontweight=weight,
        )
        ax.text(
            1.015,
            0.5,
            _count_label(colors, gray_tolerance),
            transform=ax.transAxes,
            ha="left",
            va="center",
            fontsize=10,
            color="#333333",
        )
    figure.suptitle(title or "Dominant poster colour by genre", fontsize=14, x=0.485)
    figure.text(
        0.485,
        1 - 0.62 / figure.get_figheight(),
        "each strip: the posters' dominant colours, sorted by hue (grays at the right);"
        " width \u221d number of posters",
        ha="center",
        fontsize=9.5,
        color="#555555",
    )
    return figure


def _count_label(colors: Sequence[RGB], gray_tolerance: float) -> str:
    """``"n=1,234   gray 12%"`` (just ``"n=0"`` for an empty genre)."""
    if not colors:
        return "n=0"
    grays = sum(is_gray(rgb, gray_tolerance) for rgb in colors) / len(colors)
    return f"n={len(colors):,}   gray {grays:.0%}"


def plot_colors_by_genre_decade(cells: pd.DataFrame, title: str | None = None) -> Figure:
    """Grid of genres (rows) x decades (columns); each cell shows its top colours.

    ``cells`` has one row per (genre, decade) with ``genre``, ``decade`` (a label such as
    ``"1980s"``, in column order of first appearance), ``n`` (posters) and ``palette``
    (aggregate colours, largest share first). Swatches are equal-width, ordered by share;
    empty cells are blank with ``n=0``.
    """
    decades = list(pd.unique(cells["decade"]))
    genres = [g for g in GENRES if g in set(cells["genre"])]
    if not decades:  # every image was unreadable: say so instead of drawing an empty grid
        figure = _new_figure(8, 2)
        figure.text(0.5, 0.5, "no readable posters", ha="center", va="center", fontsize=14)
        return figure
    n_swatches = max((len(p) for p in cells["palette"]), default=1) or 1
    cell_width, gap = float(n_swatches), 1.6  # in swatch units; the gap holds the n= label
    figure = _new_figure(2.6 + 2.15 * len(decades), 0.4 * len(genres) + 1.7)
    ax = figure.add_axes(
        (
            2.2 / figure.get_figwidth(),
            0.4 / figure.get_figheight(),
            1 - 2.35 / figure.get_figwidth(),
            1 - 1.4 / figure.get_figheight(),
        )
    )
    lookup = {(row.genre, row.decade): row for row in cells.itertuples(index=False)}
    for r, genre in enumerate(genres):
        for c, decade in enumerate(decades):
            x0 = c * (cell_width + gap)
            _draw_cell(ax, x0, r, cell_width, lookup.get((genre, decade)))
    ax.set_xlim(-0.1, len(decades) * (cell_width + gap) - gap + 1.5)
    ax.set_ylim(len(genres) - 0.1, -0.1)  # first genre on top
    ax.set_yticks(np.arange(len(genres)) + 0.4, genres, fontsize=11)
    ax.set_xticks(
        np.arange(len(decades)) * (cell_width + gap) + cell_width / 2, decades, fontsize=12
    )
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    figure.suptitle(title or f"Top {n_swatches} poster colours by genre and decade", fontsize=14)
    figure.text(
        0.5,
        1 - 0.6 / figure.get_figheight(),
        "pooled palettes of the posters in each cell (k-means weighted by pixel share),"
        " ordered by share; n = posters",
        ha="center",
        fontsize=9.5,
        color="#555555",
    )
    return figure


def _draw_cell(ax, x0: float, y0: float, width: float, cell) -> None:
    """Swatches of one (genre, decade) cell, or a dashed blank box with ``n=0``."""
    height = 0.8
    palette = [] if cell is None else list(cell.palette)
    n = 0 if cell is None else int(cell.n)
    if not palette:
        ax.add_patch(
            Rectangle(
                (x0, y0),
                width,
                height,
                facecolor=_GRAY_BG,
                edgecolor="#cccccc",
                linestyle="--",
                linewidth=0.8,
            )
        )
        ax.text(
            x0 + width / 2,
            y0 + height / 2,
            "n=0",
            ha="center",
            va="center",
            fontsize=9,
            color="#999999",
        )
        return
    swatch = width / len(palette)
    for i, (rgb, _share) in enumerate(palette):
        ax.add_patch(
            Rectangle(
                (x0 + i * swatch, y0),
                swatch,
                height,
                facecolor=np.asarray(rgb) / 255.0,
                edgecolor="white",
                linewidth=0.6,
            )
        )
    ax.add_patch(Rectangle((x0, y0), width, height, fill=False, edgecolor="#aaaaaa", linewidth=0.6))
    ax.text(
        x0 + width + 0.12,
        y0 + height / 2,
        f"n={n:,}",
        ha="left",
        va="center",
        fontsize=8.5,
        color="#333333",
    )
