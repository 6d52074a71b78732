"""Small builders shared by tests: folder datasets with chosen rows and broken images, and
the ImageNet top-k read-out the backbone tests check predictions with."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (40, 60)) -> Path:
    """A small random RGB JPEG."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def write_folder(root: Path, rows: list[dict], make_images: bool = True) -> Path:
    """A labels.csv folder dataset; rows need poster_id, year, genres (and optional image)."""
    root.mkdir(parents=True, exist_ok=True)
    table = []
    for k, row in enumerate(rows):
        image = row.get("image", f"images/{row['poster_id']}.jpg")
        if make_images and "image" not in row:
            write_image(root / image, seed=k)
        table.append(
            {
                "poster_id": row["poster_id"],
                "title": row.get("title", f"T{k}"),
                "year": row["year"],
                "genres": row["genres"],
                "image": image,
            }
        )
    pd.DataFrame(table).to_csv(root / "labels.csv", index=False)
    return root


def toy_features(n: int = 200, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features with a few learnable genres, one rare genre and never-seen genres."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = np.zeros((n, 19), np.uint8)
    Y[:, 0] = X[:, 0] > 0.5
    Y[:, 6] = X[:, 1] + X[:, 2] > 0
    Y[:, 3] = rng.random(n) < 0.1
    Y[:5, 18] = 1
    return X, Y


def imagenet_top_k(logits: np.ndarray, k: int = 5) -> list[list[tuple[int, float]]]:
    """Top-``k`` ``(class index, softmax probability)`` per row of ImageNet logits."""
    logits = np.asarray(logits, dtype=np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    order = np.argsort(-probs, axis=1)[:, :k]
    return [[(int(i), float(p[i])) for i in row] for p, row in zip(probs, order, strict=True)]


def interrupt_when(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    ready: Callable[[], bool],
    signum: int,
    what: str,
    timeout: float = 120,
) -> tuple[int, str]:
    """Run ``command``, send it ``signum`` once ``ready()`` holds; (return code, stderr)."""
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Python only turns SIGINT into KeyboardInterrupt if it is not ignored at start.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"{what} never started"
            time.sleep(0.01)
        process.send_signal(signum)
        _, err = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return process.returncode, err
