"""Streaming image decoding for feature extraction: bounded memory, parallel, never crashing.

Posters are decoded and resized in a thread pool (Pillow releases the GIL while decoding and
resizing, so threads give real parallelism) and handed out in batches, while at most a few
batches are in flight: 5,000 posters never sit in memory at once. An unreadable image is
recorded as ``(path, reason)`` and skipped, so one bad JPEG never stops a run.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from posterml.data.images import ImageDecodeError, load_image, resize_gray, resize_rgb

log = logging.getLogger(__name__)

# Batches decoded ahead of the consumer: enough to hide decode latency behind the model,
# few enough that memory stays bounded (4 x 32 x 224 x 224 x 3 bytes is ~20 MB).
PREFETCH_BATCHES = 4


@dataclass
class ExtractionResult:
    """Features for the inputs that could be read.

    ``features`` has one row per ``ok`` input, in input order; ``ok`` is a boolean mask over
    the inputs; ``failures`` lists ``(path, reason)`` for the others. ``n_computed`` rows came
    from the model/decoder in this call, ``n_cached`` from the feature cache.
    """

    features: np.ndarray
    ok: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)
    n_computed: int = 0
    n_cached: int = 0


def default_workers() -> int:
    """Decode threads: one per core (the model's own threads overlap with them)."""
    return max(1, os.cpu_count() or 1)


def progress_bar(total: int, desc: str, enabled: bool = True) -> tqdm:
    """A tqdm bar on stderr showing images/s and ETA."""
    return tqdm(
        total=total,
        desc=desc,
        unit="img",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        smoothing=0.1,
    )


def decode_one(path: str, size: tuple[int, int], gray: bool) -> np.ndarray | str:
    """The resized uint8 pixels of one image, or the reason it could not be decoded.

    The decoder may shrink towards ``size`` (as the server does), so training and serving
    see the same pixels.
    """
    try:
        image = load_image(path, min_size=size)
    except ImageDecodeError as exc:
        return exc.reason
    return resize_gray(image, size) if gray else resize_rgb(image, size)


def iter_image_batches(
    paths: Sequence[str],
    size: tuple[int, int],
    batch_size: int = 32,
    workers: int | None = None,
    gray: bool = False,
    progress: bool = True,
    desc: str = "decoding posters",
    failures: list[tuple[str, str]] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(indices, images)`` batches of decoded, resized posters, in input order.

    ``images`` is uint8 ``(n, h, w, 3)`` (``(n, h, w)`` with ``gray``) for ``size`` = (h, w);
    ``indices`` are the positions in ``paths`` of its rows. Unreadable images are skipped and
    appended to ``failures`` as ``(path, reason)`` (and logged), so a batch may hold fewer than
    ``batch_size`` images; a batch is never empty. At most ``PREFETCH_BATCHES`` batches are
    decoded ahead of the consumer.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    paths = [str(p) for p in paths]
    failures = [] if failures is None else failures
    window = batch_size * PREFETCH_BATCHES
    with (
        ThreadPoolExecutor(workers or default_workers(), thread_name_prefix="decode") as pool,
        progress_bar(len(paths), desc, progress) as bar,
    ):
        pending: deque[tuple[int, Future]] = deque()
        submitted = 0
        indices: list[int] = []
        images: list[np.ndarray] = []
        try:
            while submitted < len(paths) or pending:
                # Keep the pool busy up to the prefetch window, never beyond it.
                while submitted < len(paths) and len(pending) < window:
                    pending.append(
                        (submitted, pool.submit(decode_one, paths[submitted], size, gray))
                    )
                    submitted += 1
                index, future = pending.popleft()
                outcome = future.result()
                bar.update(1)
                if isinstance(outcome, str):
                    log.warning("skipping unreadable image %s: %s", paths[index], outcome)
                    failures.append((paths[index], outcome))
                else:
                    indices.append(index)
                    images.append(outcome)
                if len(images) == batch_size or (images and not pending):
                    yield np.asarray(indices, dtype=np.int64), np.stack(images)
                    indices, images = [], []
        finally:
            # The consumer may stop early (break, exception): drop queued work promptly.
            for _, future in pending:
                future.cancel()
