"""Safe image decoding shared by training, feature extraction, batch prediction and serving.

One decoder everywhere means a poster is turned into pixels the same way in training and in
serving. Every failure (truncated file, zero bytes, not an image, decompression bomb) becomes an
``ImageDecodeError`` with a short reason, so callers can report and skip instead of crashing.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Posters are at most a few megapixels; anything far above is a mistake or an attack.
MAX_IMAGE_PIXELS = 40_000_000


class ImageDecodeError(ValueError):
    """An image could not be decoded; ``reason`` says why in a few words."""

    def __init__(self, reason: str, source: str = "") -> None:
        self.reason = reason
        self.source = source
        super().__init__(f"{source}: {reason}" if source else reason)


def decode_image(data: bytes, source: str = "") -> Image.Image:
    """Decode image bytes into a fully loaded RGB ``PIL.Image``.

    Raises ``ImageDecodeError`` for empty input, unknown formats, truncated data and images
    above ``MAX_IMAGE_PIXELS`` (checked from the header, before any pixel is decoded).
    """
    if not data:
        raise ImageDecodeError("empty image (0 bytes)", source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageDecodeError(
                    f"image too large: {width}x{height} pixels (limit {MAX_IMAGE_PIXELS:,} pixels)",
                    source,
                )
            image.load()
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (unrecognised format)", source) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard fires on absurd sizes before our check can: same verdict.
        raise ImageDecodeError(
            f"image too large (decompression bomb guard): {exc}", source
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}", source) from None
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def load_image(path: str | Path) -> Image.Image:
    """Read and decode an image file; a missing file is an ``ImageDecodeError`` too."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file: {exc.strerror}", str(path)) from None
    return decode_image(data, str(path))


def resize_rgb(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` = (height, width) with bilinear filtering; uint8 array (h, w, 3).

    Posters are squashed, not cropped: the whole design carries genre cues.
    """
    height, width = size
    return np.asarray(image.resize((width, height), Image.BILINEAR), dtype=np.uint8)


def resize_gray(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Grayscale and resize to (height, width); uint8 array (h, w)."""
    height, width = size
    return np.asarray(image.convert("L").resize((width, height), Image.BILINEAR), dtype=np.uint8)
