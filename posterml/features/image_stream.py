"""Streaming image decoding: bounded memory, parallel, never crashing.

:func:`map_decoded` is the one way posterml decodes many images: posters are decoded (and
handed to a per-image function) in a thread pool (Pillow releases the GIL while decoding and
resizing, so threads give real parallelism), results come back in input order, and only a
bounded window of images is in flight: 5,000 posters never sit in memory at once. An
unreadable image comes back with the decoder's reason instead of a result, so one bad JPEG
never stops a run. :func:`iter_image_batches` builds model-ready batches on it.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

import numpy as np
from PIL import Image

from posterml.data.images import ImageDecodeError, load_image, resize_gray, resize_rgb
from posterml.progress import progress_bar

log = logging.getLogger(__name__)

T = TypeVar("T")

# Batches decoded ahead of the consumer: enough to hide decode latency behind the model,
# few enough that memory stays bounded (4 x 32 x 224 x 224 x 3 bytes is ~20 MB).
PREFETCH_BATCHES = 4
# Images in flight per decode thread when the caller names no window: keeps every thread
# busy while the consumer works on a result, and bounds memory to a few images per core.
PREFETCH_PER_WORKER = 4


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


class Decoded(NamedTuple, Generic[T]):
    """One input of :func:`map_decoded`: its position and path, then either the function's
    ``result`` (``reason`` is None) or why the image could not be decoded (``result`` None)."""

    index: int
    path: str
    result: T | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None


def default_workers() -> int:
    """Decode threads: one per core (the model's own threads overlap with them)."""
    return max(1, os.cpu_count() or 1)


def _decode_then(
    path: str, fn: Callable[[Image.Image], T] | None, min_size: tuple[int, int] | None
) -> tuple[T | Image.Image | None, str | None]:
    """``(fn(image), None)``, or ``(None, reason)`` when the file is not a usable image."""
    try:
        image = load_image(path, min_size=min_size)
    except ImageDecodeError as exc:
        return None, exc.reason
    return (fn(image) if fn is not None else image), None


def map_decoded(
    paths: Sequence[str | Path],
    fn: Callable[[Image.Image], T] | None = None,
    *,
    min_size: tuple[int, int] | None = None,
    workers: int | None = None,
    window: int | None = None,
    progress: bool = False,
    desc: str = "decoding posters",
) -> Iterator[Decoded[T]]:
    """Decode every image in a thread pool, apply ``fn``, yield a :class:`Decoded` per input.

    Results come in input order. ``fn`` runs in the pool on the decoded Pillow image (the
    image itself is the result when ``fn`` is None); ``min_size`` lets the decoder shrink
    towards the size the caller needs (as training and serving do). Only ``ImageDecodeError``
    is turned into a reason: any other error in ``fn`` is a bug and propagates. At most
    ``window`` inputs (default ``PREFETCH_PER_WORKER`` per worker) are in flight, and when the
    consumer stops early (``break``, an exception) the queued ones are cancelled. ``progress``
    draws a bar advancing per input.
    """
    paths = [str(p) for p in paths]
    workers = workers or default_workers()
    window = max(1, window or PREFETCH_PER_WORKER * workers)
    work = partial(_decode_then, fn=fn, min_size=min_size)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
    pending: deque[tuple[int, Future]] = deque()
    submitted = 0
    try:
        with progress_bar(len(paths), desc, progress) as bar:
            while submitted < len(paths) or pending:
                # Keep the pool busy up to the window, never beyond it.
                while submitted < len(paths) and len(pending) < window:
                    pending.append((submitted, pool.submit(work, paths[submitted])))
                    submitted += 1
                index, future = pending.popleft()
                result, reason = future.result()
                bar.update(1)
                yield Decoded(index, paths[index], result, reason)
    finally:
        # The consumer may stop early (break, exception): drop queued work promptly and
        # wait only for the images being decoded right now.
        pool.shutdown(wait=True, cancel_futures=True)


def _resize(image: Image.Image, size: tuple[int, int], gray: bool) -> np.ndarray:
    """The image resized to ``size`` as uint8 pixels, the way training and serving see it."""
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
    failures = [] if failures is None else failures
    decoded = map_decoded(
        paths,
        partial(_resize, size=size, gray=gray),
        min_size=size,
        workers=workers,
        window=batch_size * PREFETCH_BATCHES,
        progress=progress,
        desc=desc,
    )
    indices: list[int] = []
    images: list[np.ndarray] = []
    with closing(decoded):
        for item in decoded:
            if not item.ok:
                log.warning("skipping unreadable image %s: %s", item.path, item.reason)
                failures.append((item.path, item.reason))
                continue
            indices.append(item.index)
            images.append(item.result)
            if len(images) == batch_size:
                yield np.asarray(indices, dtype=np.int64), np.stack(images)
                indices, images = [], []
    if images:
        yield np.asarray(indices, dtype=np.int64), np.stack(images)
