"""A small deterministic set of poster-like images for offline demos and fast tests.

Each genre has its own colour and shape, each decade its own palette (older posters are
warmer, grainier and less saturated), so a model has a real, learnable signal, including a
period shift like the modern-to-vintage one. Runs on it are tagged ``dataset=synthetic``:
its numbers say the code works, not how well posters can be classified.
"""

from __future__ import annotations

import colorsys
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from posterml.cache_dir import cache_dir
from posterml.data.dataset import PosterDataset, load_folder
from posterml.genres import GENRES
from posterml.io import make_temp_dir

GENERATOR_VERSION = 2  # bump when images change, so cached copies are regenerated
POSTER_SIZE = (100, 150)  # width, height: a 2:3 poster
DECADES = (1950, 1960, 1970, 1980, 1990, 2000, 2010)
SHAPES = ("circle", "rect", "triangle", "hstripes", "vstripes", "diamond", "ring", "cross")
# Roughly TMDb's skew: Drama and Comedy common, TV Movie and Western rare.
GENRE_WEIGHTS = np.array([10, 7, 3, 18, 7, 2, 22, 5, 5, 2, 6, 2, 4, 9, 5, 1, 10, 2, 2], dtype=float)


def _genre_style(index: int) -> tuple[tuple[float, float, float], str]:
    """A fixed hue (spread around the colour wheel) and shape for each genre."""
    hue = (index * 0.618034) % 1.0  # golden-ratio spacing keeps neighbours distinct
    rgb = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return rgb, SHAPES[index % len(SHAPES)]


def _decade_tone(decade: int) -> tuple[float, np.ndarray]:
    """(saturation factor, sepia tint) for a decade: vintage is muted and warm."""
    age = (2010 - decade) / 60.0  # 0 for the 2010s, 1 for the 1950s
    saturation = 1.0 - 0.6 * age
    tint = np.array([0.95, 0.85, 0.65]) * age + np.array([0.1, 0.1, 0.15]) * (1 - age)
    return saturation, tint


def _tone(rgb: tuple[float, float, float], saturation: float, tint: np.ndarray) -> tuple:
    gray = sum(rgb) / 3
    mixed = np.array([gray + (c - gray) * saturation for c in rgb]) * 0.8 + tint * 0.2
    return tuple(int(255 * min(max(c, 0.0), 1.0)) for c in mixed)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple, color: tuple) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "rect":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=color)
    elif shape == "hstripes":
        for y in range(int(y0), int(y1), 6):
            draw.rectangle((x0, y, x1, y + 2), fill=color)
    elif shape == "vstripes":
        for x in range(int(x0), int(x1), 6):
            draw.rectangle((x, y0, x + 2, y1), fill=color)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=color)
    elif shape == "ring":
        draw.ellipse(box, outline=color, width=4)
    else:  # cross
        draw.rectangle((cx - 3, y0, cx + 3, y1), fill=color)
        draw.rectangle((x0, cy - 3, x1, cy + 3), fill=color)


def render_poster(genres: list[int], decade: int, rng: np.random.Generator) -> Image.Image:
    """One poster: decade-toned gradient background, one shape per genre, grain."""
    width, height = POSTER_SIZE
    saturation, tint = _decade_tone(decade)
    base = np.array(_tone(_genre_style(genres[0])[0], saturation, tint), dtype=float) * 0.35
    top = base + rng.uniform(0, 40, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    pixels = top * (1 - ramp) + base * ramp * 0.6
    image = Image.fromarray(np.broadcast_to(pixels, (height, width, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for genre in genres:
        if rng.random() < 0.15:  # sometimes a genre leaves no visible cue, as in real posters
            continue
        rgb, shape = _genre_style(genre)
        size = rng.uniform(25, 55)
        x, y = rng.uniform(0, width - size), rng.uniform(15, height - size - 20)
        jitter = np.clip(np.array(rgb) + rng.normal(0, 0.08, 3), 0, 1)
        _draw_shape(draw, shape, (x, y, x + size, y + size), _tone(jitter, saturation, tint))
    if rng.random() < 0.3:  # a distractor in a random colour
        size = rng.uniform(15, 30)
        x, y = rng.uniform(0, width - size), rng.uniform(0, height - size)
        draw.ellipse(
            (x, y, x + size, y + size), fill=tuple(int(c) for c in rng.integers(0, 256, 3))
        )
    title_y = height - 18 if rng.random() < 0.5 else 2
    draw.rectangle(
        (6, title_y, width - 6, title_y + 12), fill=_tone((0.9, 0.9, 0.85), saturation, tint)
    )
    grain = rng.normal(0, 4 + 10 * (2010 - decade) / 60, (height, width, 3))
    noisy = np.clip(np.asarray(image, dtype=float) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(noisy)


def _sample_genres(rng: np.random.Generator) -> list[int]:
    count = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
    chosen = rng.choice(
        len(GENRES), size=count, replace=False, p=GENRE_WEIGHTS / GENRE_WEIGHTS.sum()
    )
    return [int(g) for g in chosen]


def _render_into(folder: Path, n: int, seed: int) -> None:
    """Draw ``n`` posters into ``folder/images`` and write ``folder/labels.csv``."""
    (folder / "images").mkdir()
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        decade = int(rng.choice(DECADES))
        year = decade + int(rng.integers(0, 10))
        genres = _sample_genres(rng)
        render_poster(genres, decade, rng).save(folder / "images" / f"s{i:05d}.jpg", quality=90)
        rows.append(
            {
                "poster_id": f"s{i:05d}",
                "title": f"Synthetic Poster {i} ({year})",
                "year": year,
                "genres": "|".join(GENRES[g] for g in genres),
                "image": f"images/s{i:05d}.jpg",
            }
        )
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)


def write_synthetic(out_dir: str | Path, n: int = 300, seed: int = 0) -> Path:
    """Write ``n`` synthetic posters and a ``labels.csv`` into ``out_dir`` (a new folder).

    The folder is built under a temporary name and renamed into place, so a reader never sees
    half a dataset; if another process won the race, its identical copy is kept.
    """
    out_dir = Path(out_dir)
    if (out_dir / "labels.csv").is_file():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out_dir)  # umask permissions, like the folder it becomes
    try:
        _render_into(tmp, n, seed)
        os.replace(tmp, out_dir)
    except OSError:
        if not (out_dir / "labels.csv").is_file():
            raise
    finally:  # another process created it meanwhile (keep theirs), or we were interrupted
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def synthetic_dataset(n: int = 300, seed: int = 0) -> PosterDataset:
    """The embedded default dataset, generated once into the posterml cache and reused."""
    folder = cache_dir() / "datasets" / f"synthetic-v{GENERATOR_VERSION}-n{n}-seed{seed}"
    write_synthetic(folder, n=n, seed=seed)
    return load_folder(folder, name="synthetic")
