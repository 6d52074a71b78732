"""Dominant colours of posters: median-cut palettes, gray filtering and pooled palettes.

The colour study asks which hues each genre and decade favours. A poster's palette comes from
Pillow's median cut on a small copy (a 100 px thumbnail keeps the colours but costs ~1/15 of
the pixels). Near-grays (black, white, grays and very washed-out tints) say little about hue
and dominate most posters, so they can be dropped before quantising: the palette then
describes the poster's *colours*, with shares of its coloured pixels.
"""

from __future__ import annotations

import colorsys
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from posterml.data.images import ImageDecodeError, load_image

logger = logging.getLogger(__name__)

RGB = tuple[int, int, int]
Palette = list[tuple[RGB, float]]  # (colour, share), largest share first; shares sum to 1

THUMBNAIL_SIZE = 100  # px on the long side: plenty for 5 colours, fast to quantise
# Chroma (max - min channel, as a fraction of 255) below which a colour counts as gray.
# 0.15 keeps dark browns and navy as colours but treats JPEG-tinted blacks/whites as gray.
GRAY_TOLERANCE = 0.15
# Fewer coloured pixels than this fraction means "a gray poster": a few stray pixels of
# JPEG noise or a tiny logo should not decide its colour.
MIN_COLOR_FRACTION = 0.01


class PaletteResult(NamedTuple):
    """Palettes aligned with the input paths (``None`` where unreadable) and the skips."""

    palettes: list[Palette | None]
    skipped: list[tuple[str, str]]  # (path, reason)


def to_hex(rgb: Sequence[int]) -> str:
    """``(255, 0, 16)`` -> ``"#ff0010"``."""
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def chroma(rgb: Sequence[float]) -> float:
    """Colourfulness in [0, 1]: max minus min channel over 255 (0 for any gray)."""
    return (max(rgb) - min(rgb)) / 255.0


def is_gray(rgb: Sequence[float], tolerance: float = GRAY_TOLERANCE) -> bool:
    """Whether a colour is a shade of gray (black and white included) at this tolerance."""
    return chroma(rgb) < tolerance


def hue(rgb: Sequence[float]) -> float:
    """HSV hue in [0, 1) (red at 0), for ordering colours around the wheel."""
    return colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))[0]


def _thumbnail_pixels(image: Image.Image, size: int) -> np.ndarray:
    """The image's pixels as an (n, 3) uint8 array after downscaling to ``size`` px."""
    small = image.convert("RGB") if image.mode != "RGB" else image.copy()
    small.thumbnail((size, size), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.uint8).reshape(-1, 3)


def _median_cut(pixels: np.ndarray, n_colors: int) -> Palette:
    """Median-cut palette of an (n, 3) pixel array, sorted by pixel share."""
    strip = Image.fromarray(np.ascontiguousarray(pixels).reshape(1, -1, 3), mode="RGB")
    quantized = strip.quantize(colors=n_colors, method=Image.Quantize.MEDIANCUT)
    flat = quantized.getpalette() or []
    counts = quantized.getcolors(maxcolors=256) or []
    total = float(sum(count for count, _ in counts))
    palette = [
        (tuple(int(c) for c in flat[3 * index : 3 * index + 3]), count / total)
        for count, index in counts
    ]
    return sorted(palette, key=lambda entry: -entry[1])


def dominant_colors(
    image: Image.Image,
    n_colors: int = 5,
    drop_grays: bool = False,
    gray_tolerance: float = GRAY_TOLERANCE,
    thumbnail_size: int = THUMBNAIL_SIZE,
) -> Palette:
    """The ``n_colors`` main colours of ``image`` with their pixel shares, largest first.

    With ``drop_grays`` the gray pixels are removed *before* median cut, so all
    ``n_colors`` slots go to real colours and shares are fractions of the coloured pixels.
    An (almost) all-gray image has no such colours: its single most common gray is returned
    with share 1.0, so every poster still has a dominant colour.
    """
    if n_colors < 1:
        raise ValueError(f"n_colors must be at least 1, got {n_colors}")
    pixels = _thumbnail_pixels(image, thumbnail_size)
    if not drop_grays:
        return _median_cut(pixels, n_colors)
    spread = pixels.max(axis=1).astype(np.int16) - pixels.min(axis=1)
    colored = pixels[spread >= gray_tolerance * 255]
    if len(colored) < MIN_COLOR_FRACTION * len(pixels):
        top_gray, _ = _median_cut(pixels, n_colors)[0]
        return [(top_gray, 1.0)]
    return _median_cut(colored, n_colors)


def palettes(
    paths: Iterable[str | Path],
    n_colors: int = 5,
    drop_grays: bool = False,
    gray_tolerance: float = GRAY_TOLERANCE,
    workers: int | None = None,
    progress: bool = True,
) -> PaletteResult:
    """Palettes of many image files, decoded and quantised on a thread pool.

    Pillow releases the GIL while decoding and resizing, so threads use every core without
    the pickling cost of processes. Unreadable images are logged, listed in ``skipped`` and
    get ``None``: one bad JPEG must not stop a study of thousands.
    """
    paths = [str(p) for p in paths]
    workers = workers or os.cpu_count() or 1

    def one(path: str) -> Palette | str:
        try:
            image = load_image(path)
        except ImageDecodeError as exc:
            return exc.reason  # a str marks a skip; palettes are lists
        return dominant_colors(image, n_colors, drop_grays, gray_tolerance)

    results: list[Palette | None] = []
    skipped: list[tuple[str, str]] = []
    bar = tqdm(total=len(paths), unit="img", desc="palettes", disable=not progress)
    with bar, ThreadPoolExecutor(max_workers=workers) as pool:
        for path, result in zip(paths, pool.map(one, paths), strict=True):
            if isinstance(result, str):
                logger.warning("skipping unreadable image %s: %s", path, result)
                skipped.append((path, result))
                results.append(None)
            else:
                results.append(result)
            bar.update()
    return PaletteResult(results, skipped)


def aggregate_palette(
    pooled: Iterable[Palette],
    n_colors: int = 5,
    seed: int = 0,
) -> Palette:
    """One palette for a group of posters: weighted k-means over their pooled palettes.

    Each colour is weighted by its share, so every poster counts once whatever its number of
    colours. Returns up to ``n_colors`` colours with their weight shares, largest first
    (empty for an empty group).
    """
    colors, weights = [], []
    for palette in pooled:
        for rgb, share in palette:
            colors.append(rgb)
            weights.append(share)
    if not colors:
        return []
    points = np.asarray(colors, dtype=float)
    w = np.asarray(weights, dtype=float)
    centers, mass = weighted_kmeans(points, w, n_colors, seed)
    order = np.argsort(-mass)
    total = mass.sum()
    return [
        (tuple(int(round(c)) for c in centers[i]), float(mass[i] / total))
        for i in order
        if mass[i] > 0
    ]


def weighted_kmeans(
    points: np.ndarray, weights: np.ndarray, k: int, seed: int = 0, iterations: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-means (k-means++ start, Lloyd steps): (centers (k', 3), weight per center).

    A few dozen lines of numpy instead of scikit-learn: groups are small (hundreds to a few
    thousand colours), and this stays deterministic for a seed with no convergence warnings
    when a group has fewer distinct colours than ``k``.
    """
    unique, inverse = np.unique(points, axis=0, return_inverse=True)
    if len(unique) <= k:  # nothing to cluster: each distinct colour is its own center
        return unique.astype(float), np.bincount(inverse.ravel(), weights, len(unique))
    rng = np.random.default_rng(seed)
    centers = [points[rng.choice(len(points), p=weights / weights.sum())]]
    for _ in range(1, k):
        d2 = ((points[:, None, :] - np.asarray(centers)[None]) ** 2).sum(-1).min(axis=1)
        p = weights * d2
        centers.append(points[rng.choice(len(points), p=p / p.sum())])
    centers = np.asarray(centers, dtype=float)
    for _ in range(iterations):
        labels = ((points[:, None, :] - centers[None]) ** 2).sum(-1).argmin(axis=1)
        mass = np.bincount(labels, weights, k)
        sums = np.stack([np.bincount(labels, weights * points[:, j], k) for j in range(3)], 1)
        updated = np.where(mass[:, None] > 0, sums / np.maximum(mass, 1e-12)[:, None], centers)
        if np.allclose(updated, centers, atol=0.5):  # converged to within half a level
            centers = updated
            break
        centers = updated
    labels = ((points[:, None, :] - centers[None]) ** 2).sum(-1).argmin(axis=1)
    return centers, np.bincount(labels, weights, k)
