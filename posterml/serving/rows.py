"""One scoring request's rows, checked as the served model checks them.

The scoring server (``pyfunc``), ``posterml predict`` and Spark batch scoring call these, so
a row one of them accepts the others accept too: ``image`` is base64 JPEG, PNG or WebP
within the limits (``posterml.serving.limits``), ``year`` a release year or unknown (empty,
NaN or 0). Every bad row of a request is named in one ``InvalidPosterInput``.
"""

from __future__ import annotations

import base64
import binascii
import math

import numpy as np
import pandas as pd

from posterml.data.images import ImageDecodeError, decode_image, decoded_pixels
from posterml.serving.limits import (
    ENV_MAX_IMAGE_PIXELS,
    ENV_MAX_REQUEST_PIXELS,
    ENV_MAX_ROWS,
    FIRST_YEAR,
    LAST_YEAR,
    MAX_BASE64_CHARS,
    Deadline,
    ServingLimits,
)

_SHOWN_ERRORS = 5


def year_problem(year: float) -> str | None:
    """Why ``year`` is no release year, or None when it is one or unknown (NaN or 0)."""
    if not math.isfinite(year) or year == 0:
        return None
    if FIRST_YEAR <= year <= LAST_YEAR:
        return None
    return f"year {year:g} is not a release year ({FIRST_YEAR}-{LAST_YEAR})"


class InvalidPosterInput(ValueError):
    """The request is unusable; the message names the rows and the problem."""


def image_bytes(value: object) -> bytes:
    """A row's ``image`` cell as bytes: base64 text within ``MAX_BASE64_CHARS``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise ImageDecodeError("no image (null)")
    if not isinstance(value, str):
        raise ImageDecodeError(f"expected a base64 string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ImageDecodeError("empty string (no image)")
    if len(text) > MAX_BASE64_CHARS:
        raise ImageDecodeError(f"image payload too large ({len(text):,} base64 characters)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageDecodeError("not valid base64") from None


def _raise_row_errors(errors: list[str], n_rows: int) -> None:
    if errors:
        more = (
            f"; ... and {len(errors) - _SHOWN_ERRORS} more" if len(errors) > _SHOWN_ERRORS else ""
        )
        raise InvalidPosterInput(
            f"{len(errors)} of {n_rows} image(s) unusable: "
            + "; ".join(errors[:_SHOWN_ERRORS])
            + more
        )


def decode_images(
    frame: pd.DataFrame,
    limits: ServingLimits | None = None,
    preparer=None,
    deadline: Deadline | None = None,
) -> list:
    """Decode every row's ``image``; one ``InvalidPosterInput`` lists all bad rows.

    Everything that can be known without decoding is checked first, from the request and
    the image headers: the column, the number of rows, each row's base64, format and pixels,
    and the pixels of the whole request (``limits``, default ``ServingLimits()``). Only then
    are images decoded, one at a time. With a ``preparer`` (a featurizer, or a
    ``PosterPipeline``, which also keeps the page its OCR reads), each is decoded towards
    its ``image_size`` and only ``preparer.prepare_image`` of it is kept (small arrays, the
    same features): full-size pixels of one image at most exist at any time. Without, the
    full-size RGB images are returned. ``deadline`` is checked between rows.
    """
    limits = limits or ServingLimits()
    if not isinstance(frame, pd.DataFrame) or "image" not in frame.columns:
        raise InvalidPosterInput("input needs a column 'image' holding base64-encoded JPEG/PNG")
    if len(frame) > limits.max_rows:
        raise InvalidPosterInput(
            f"request has {len(frame)} rows, over the limit of {limits.max_rows} images per "
            f"request ({ENV_MAX_ROWS}): send smaller batches"
        )
    # Pixels are counted as they will be decoded: a baseline JPEG at reduced scale.
    min_size = preparer.image_size if preparer is not None else None
    opened, errors = [], []
    total_pixels, over_from = 0, None
    for row, value in enumerate(frame["image"].tolist()):
        try:
            data = image_bytes(value)
            total_pixels += decoded_pixels(
                data,
                max_pixels=limits.max_image_pixels,
                limit_name=ENV_MAX_IMAGE_PIXELS,
                min_size=min_size,
            )
        except ImageDecodeError as exc:
            errors.append(f"row {row}: {exc.reason}")
            data = None
        if over_from is None and total_pixels > limits.max_request_pixels:
            over_from = row
        opened.append(data)
    _raise_row_errors(errors, len(frame))
    if over_from is not None:
        raise InvalidPosterInput(
            f"the {len(frame)} images hold {total_pixels:,} pixels, over the limit of "
            f"{limits.max_request_pixels:,} pixels per request ({ENV_MAX_REQUEST_PIXELS}), "
            f"crossed at row {over_from}: send fewer or smaller images"
        )
    images = []
    for row in range(len(opened)):
        if deadline is not None:
            deadline.check(f"decoding row {row}")
        data, opened[row] = opened[row], None  # the bytes go with this row
        try:
            decoded = decode_image(data, max_pixels=limits.max_image_pixels, min_size=min_size)
        except ImageDecodeError as exc:
            errors.append(f"row {row}: {exc.reason}")
            continue
        images.append(decoded if preparer is None else preparer.prepare_image(decoded))
        del decoded  # else this row's full-size image lives on while the next one is decoded
    _raise_row_errors(errors, len(frame))
    return images


def request_years(frame: pd.DataFrame) -> np.ndarray | None:
    """The optional ``year`` column as floats (NaN where missing), or None without one."""
    if "year" not in frame.columns:
        return None
    years = pd.to_numeric(frame["year"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.array([year_problem(y) is not None for y in years], dtype=bool)
    if bad.any():
        rows = ", ".join(str(r) for r in np.flatnonzero(bad)[:_SHOWN_ERRORS])
        raise InvalidPosterInput(
            f"row(s) {rows}: year must be a release year ({FIRST_YEAR}-{LAST_YEAR})"
        )
    years[years == 0] = np.nan
    return years
