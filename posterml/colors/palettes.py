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
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from sklearn.cluster import KMeans
from threadpoolctl import ThreadpoolController

from posterml.features.image_stream import map_decoded

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
# k-means++ restarts per pooled palette; the fit with the least weighted inertia wins (one
# restart can land far from the best on a pooled palette).
KMEANS_RESTARTS = 4
# sklearn's OpenMP runtime, for pinning small k-means fits to one thread (see weighted_kmeans).
# One controller: threadpool_limits() rescans the loaded libraries on every call (~13 ms).
_OPENMP = ThreadpoolController()


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

    Decoding goes through :func:`posterml.features.image_stream.map_decoded` (threads: Pillow
    releases the GIL while decoding and quantising). Unreadable images are logged, listed in
    ``skipped`` and get ``None``: one bad JPEG must not stop a study of thousands.
    """
    one = partial(
        dominant_colors, n_colors=n_colors, drop_grays=drop_grays, gray_tolerance=gray_tolerance
    )
    results: list[Palette | None] = []
    skipped: list[tuple[str, str]] = []
    decoded = map_decoded(list(paths), one, workers=workers, progress=progress, desc="palettes")
    for item in decoded:
        if not item.ok:
            logger.warning("skipping unreadable image %s: %s", item.path, item.reason)
            skipped.append((item.path, item.reason))
        results.append(item.result)
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
    points: np.ndarray, weights: np.ndarray, k: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-means: (centers (k', 3), weight per center), deterministic for a seed.

    scikit-learn's ``KMeans`` with ``sample_weight``, on one thread: groups are small
    (tens to a few thousand colours) and OpenMP's thread barriers cost more than they save
    (500 colours, k=5: 8 ms on one thread, 617 ms on two on a loaded 2-core machine). A group
    with at most ``k`` distinct colours has nothing to cluster (k-means would warn about
    duplicate centers): each distinct colour is then its own center.
    """
    unique, inverse = np.unique(points, axis=0, return_inverse=True)
    if len(unique) <= k:
        return unique.astype(float), np.bincount(inverse.ravel(), weights, len(unique))
    model = KMeans(n_clusters=k, random_state=seed, n_init=KMEANS_RESTARTS)
    with _OPENMP.limit(limits=1, user_api="openmp"):
        model.fit(points, sample_weight=weights)
    return model.cluster_centers_, np.bincount(model.labels_, weights, k)
