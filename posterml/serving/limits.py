"""What one request to the scoring server may cost: rows, pixels, time and concurrency.

The served model reads these limits from the environment when it loads (``load_context``),
so they are set where ``mlflow models serve`` runs::

    POSTERML_MAX_ROWS=128 mlflow models serve -m models:/poster-genre-classifier@champion ...

Rows and pixels are checked from the request and the image headers before any pixel is
decoded; a request over a limit gets HTTP 400 naming the limit, its variable and the row.

Time: MLflow's scoring server answers 504 after ``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT``
seconds (default 60), but it runs the model in a worker thread (``asyncio.to_thread``) that
nothing cancels, so a timed-out request would keep computing (and a client that retries
adds more). The model therefore checks a deadline of the same length between rows and
between chunks of scoring, and stops there. The deadline starts when the model is called:
reading and parsing the body come before it and are not counted.

Concurrency: the scoring server runs up to min(32, cores + 4) requests at once (the default
thread pool of ``asyncio.to_thread``), each holding its decoded images. At most
``POSTERML_MAX_CONCURRENT_REQUESTS`` are decoded and scored at once; the others wait for a
slot (until their deadline, then 503). The CPU is shared anyway (each request's posters are
split over every core, ``posterml.serving.threads``), so waiting costs little throughput and
bounds memory.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields

from posterml.data.images import MAX_IMAGE_PIXELS

ENV_MAX_ROWS = "POSTERML_MAX_ROWS"
ENV_MAX_IMAGE_PIXELS = "POSTERML_MAX_IMAGE_PIXELS"
ENV_MAX_REQUEST_PIXELS = "POSTERML_MAX_REQUEST_PIXELS"
ENV_MAX_CONCURRENT = "POSTERML_MAX_CONCURRENT_REQUESTS"
ENV_TIMEOUT = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"  # MLflow's own, read, not set

# Fixed bounds on one row, checked before anything is decoded. They live here, beside the
# configurable limits and away from the model's MLflow imports, so that Spark's executors
# check rows with them without importing MLflow (~5 s a worker).
MAX_BASE64_CHARS = 30_000_000  # ~22 MB of image bytes per poster is already absurd
# A ``year`` outside these is a mistake (a row number, a runtime), not a release year.
FIRST_YEAR, LAST_YEAR = 1870, 2100


class LimitExceeded(RuntimeError):
    """A request ran out of time or found no free slot; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServingLimits:
    """Bounds on one request; ``from_env`` reads them, the defaults suit posters.

    ``max_rows``: images per request (512 posters of 300x450 are ~70 Mpx, ~1 s of decoding).
    ``max_image_pixels``: width x height of one image from its header, 16 Mpx (a 4000x4000
    photo; TMDb originals are ~2000x3000), the decoder's own default: a PNG/WebP is decoded
    at full size before it is reduced, up to 4 bytes a pixel, so one decode stays < ~64 MB.
    ``max_request_pixels``: the sum over the request, 100 Mpx: bounds the decoding time.
    ``max_concurrent``: requests decoded and scored at once.
    ``timeout_s``: the deadline of one request, MLflow's request timeout.
    """

    max_rows: int = 512
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_request_pixels: int = 100_000_000
    max_concurrent: int = 2
    timeout_s: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingLimits:
        """The limits from ``POSTERML_*`` variables (and MLflow's timeout), else defaults.

        A value that is not a positive number raises ``ValueError`` naming the variable, so
        a mistyped limit stops the server at startup instead of being ignored.
        """
        environ = os.environ if environ is None else environ
        names = {
            "max_rows": ENV_MAX_ROWS,
            "max_image_pixels": ENV_MAX_IMAGE_PIXELS,
            "max_request_pixels": ENV_MAX_REQUEST_PIXELS,
            "max_concurrent": ENV_MAX_CONCURRENT,
            "timeout_s": ENV_TIMEOUT,
        }
        values = {}
        for field in fields(cls):
            text = environ.get(names[field.name], "").strip().replace("_", "")
            if not text:
                continue
            kind = float if field.name == "timeout_s" else int
            try:
                value = kind(text)
            except ValueError:
                value = 0
            if not value > 0:
                raise ValueError(
                    f"{names[field.name]}={environ[names[field.name]]!r}: "
                    f"expected a positive {'number' if kind is float else 'integer'}"
                )
            values[field.name] = value
        return cls(**values)


class Deadline:
    """A point in time after which a request stops; ``check`` raises past it (504)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self, doing: str) -> None:
        """Raise ``LimitExceeded`` (504) if the deadline has passed; ``doing`` says where."""
        if time.monotonic() > self.end:
            raise LimitExceeded(
                f"request took longer than {self.seconds:g} s ({ENV_TIMEOUT}); "
                f"stopped while {doing}",
                504,
            )


class RequestSlots:
    """At most ``n`` requests at once; a request waits for a slot until its deadline (503)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._semaphore = threading.BoundedSemaphore(n)

    @contextmanager
    def hold(self, deadline: Deadline) -> Iterator[None]:
        if not self._semaphore.acquire(timeout=max(0.0, deadline.remaining())):
            raise LimitExceeded(
                f"server busy: {self.n} request(s) already running ({ENV_MAX_CONCURRENT}) "
                f"for longer than the {deadline.seconds:g} s timeout; retry later",
                503,
            )
        try:
            yield
        finally:
            self._semaphore.release()
