"""A corpus of unusual and hostile poster inputs, generated in code (nothing copied in).

Three kinds of entries:

* ``BAD_IMAGES``: bytes every door must refuse (decoder: ``ImageDecodeError``; ``posterml
  predict``: skipped and listed; server: HTTP 400 naming the row), each with the words the
  reason must contain;
* ``ODD_GOOD_IMAGES``: unusual but valid posters (CMYK, alpha, palette, 16-bit, 1-bit, 1x1,
  WebP, EXIF-turned, a 24 Mpx phone photo...) that every door must accept (every door
  decodes towards the model's input size);
* request-level cases for the server only (``fifty_mb_value``, ``batch_with_one_bad_row``):
  a body too large, a null image, a 500-row batch with one bad row...

Images are built from a synthetic poster (``poster_rgb``) or drawn shapes, never from real
posters. Builders are cached: the large ones take ~0.5 s to encode.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Callable
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

# Over the default per-image limit of 16 Mpx (posterml.data.images.MAX_IMAGE_PIXELS) ...
HUGE_JPEG_SIZE = (4096, 4097)
# ... as is a 24 Mpx phone photo, which a baseline JPEG decodes at 1/4 scale for a model.
PHONE_PHOTO_SIZE = (5712, 4284)
# ... and a pixel bomb: 40 Mpx, ~12 kB as a PNG, 120 MB once decoded to RGB.
BOMB_SIDE = 6324
# Under the per-image limit but 7 of them (105 Mpx) are over the per-request one (100 Mpx).
LARGE_SIDE = 3873


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@cache
def poster_array(width: int = 60, height: int = 90, seed: int = 0) -> np.ndarray:
    """A synthetic 'poster': smooth colour gradients and a few blocks, uint8 (h, w, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            128 + 100 * np.sin(x / (7 + seed) + rng.uniform(0, 6)),
            128 + 100 * np.cos(y / (9 + seed) + rng.uniform(0, 6)),
            128 + 100 * np.sin((x + y) / 13 + rng.uniform(0, 6)),
        ],
        axis=-1,
    )
    image = base.clip(0, 255).astype(np.uint8)
    for _ in range(4):
        x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
        image[y0 : y0 + height // 4, x0 : x0 + width // 4] = rng.integers(0, 256, 3)
    return image


def poster_rgb(width: int = 60, height: int = 90, seed: int = 0) -> Image.Image:
    return Image.fromarray(poster_array(width, height, seed), "RGB")


def poster_jpeg(seed: int = 0, width: int = 60, height: int = 90) -> bytes:
    return encode(poster_rgb(width, height, seed), "JPEG", quality=90)


# --------------------------------------------------------------------------- 16-bit PNGs
def png_by_hand(
    width: int, height: int, bit_depth: int, colour_type: int, rows: list[bytes]
) -> bytes:
    """A PNG written by hand (Pillow cannot save 16-bit RGB): IHDR, one IDAT, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def png16_twin(array8: np.ndarray) -> bytes:
    """The 16-bit PNG of an 8-bit gray (h, w) or RGB (h, w, 3) array: each v stored as v*257."""
    wide = array8.astype(">u2") * 257
    height, width = array8.shape[:2]
    colour_type = 0 if array8.ndim == 2 else 2
    return png_by_hand(width, height, 16, colour_type, [wide[i].tobytes() for i in range(height)])


def png8(array8: np.ndarray) -> bytes:
    return encode(Image.fromarray(array8), "PNG")


# --------------------------------------------------------------------------- odd but good
def _rgba_png() -> bytes:
    """Half transparent: the left half opaque poster, the right half fully transparent black."""
    rgba = np.dstack([poster_array(), np.full((90, 60), 255, np.uint8)])
    rgba[:, 30:] = 0
    return encode(Image.fromarray(rgba, "RGBA"), "PNG")


def _palette_transparent_png() -> bytes:
    image = poster_rgb().quantize(16)
    image.info["transparency"] = 0
    return encode(image, "PNG", transparency=0)


def _cmyk_jpeg() -> bytes:
    return encode(poster_rgb().convert("CMYK"), "JPEG", quality=90)


# How a camera stores an upright poster under each EXIF orientation: the inverse of the turn
# the tag asks a viewer to make (orientation 6, "rotate 90 clockwise to view", is stored
# turned 90 degrees counter-clockwise).
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def as_camera_stores(image: Image.Image, orientation: int, fmt: str, **options) -> bytes:
    """``image`` stored turned, with the EXIF orientation tag that turns it back."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = image.transpose(STORED_AS[orientation]) if orientation in STORED_AS else image
    return encode(stored, fmt, exif=exif.tobytes(), **options)


def _animated_webp() -> bytes:
    frames = [poster_rgb(seed=s) for s in range(3)]
    return encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)


ODD_GOOD_IMAGES: dict[str, Callable[[], bytes]] = {
    "cmyk-jpeg": _cmyk_jpeg,
    "grayscale-jpeg": lambda: encode(poster_rgb().convert("L"), "JPEG"),
    "progressive-jpeg": lambda: encode(poster_rgb(), "JPEG", progressive=True),
    "rgba-png": _rgba_png,
    "la-png": lambda: encode(poster_rgb().convert("LA"), "PNG"),
    "palette-transparent-png": _palette_transparent_png,
    "1bit-png": lambda: encode(poster_rgb().convert("1"), "PNG"),
    "16bit-gray-png": lambda: png16_twin(np.asarray(poster_rgb().convert("L"))),
    "16bit-rgb-png": lambda: png16_twin(poster_array()),
    "1x1-png": lambda: encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
    "1x1-jpeg": lambda: encode(Image.new("RGB", (1, 1), (200, 10, 10)), "JPEG"),
    "webp": lambda: encode(poster_rgb(), "WEBP", quality=90),
    "animated-webp": _animated_webp,
    "large-jpeg-2000x3000": lambda: poster_jpeg(width=2000, height=3000),
    "exif-rotated-jpeg": lambda: as_camera_stores(poster_rgb(), 6, "JPEG"),
    "phone-photo-24mpx-jpeg": lambda: phone_photo_jpeg(),  # defined below, built on use
    "broken-exif-jpeg": lambda: encode(poster_rgb(), "JPEG", exif=b"Exif\x00\x00MM\x00*\xff"),
}


# --------------------------------------------------------------------------- bad
def _truncated_jpeg() -> bytes:
    data = poster_jpeg(width=200, height=300)
    return data[: len(data) // 2]


def _animated_gif() -> bytes:
    frames = [poster_rgb(seed=s).convert("P") for s in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def _big_drawing(size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, (30, 60, 90))
    width, height = size
    ImageDraw.Draw(image).rectangle(
        [width // 8, height // 8, width // 2, height // 2], fill=(220, 200, 10)
    )
    return image


@cache
def huge_jpeg() -> bytes:
    """A valid progressive JPEG of 4096x4097 (16.8 Mpx, ~0.2 MB): over the per-image pixel
    limit at any scale (libjpeg keeps every coefficient of a progressive JPEG)."""
    return encode(_big_drawing(HUGE_JPEG_SIZE), "JPEG", quality=75, progressive=True)


@cache
def phone_photo_jpeg() -> bytes:
    """A baseline JPEG the size of a 24 Mpx phone photo (5712x4284): over the per-image
    limit at full size, 1.5 Mpx when decoded towards a model's input size."""
    return encode(_big_drawing(PHONE_PHOTO_SIZE), "JPEG", quality=85)


@cache
def one_bit_png(side: int) -> bytes:
    """A one-bit ``side`` x ``side`` PNG of a few kB (a frame and a block)."""
    image = Image.new("1", (side, side), 1)
    draw = ImageDraw.Draw(image)
    draw.rectangle([side // 8, side // 8, side * 7 // 8, side * 7 // 8], outline=0, width=40)
    draw.rectangle([side // 4, side // 3, side * 3 // 4, side // 2], fill=0)
    return encode(image, "PNG", optimize=True)


def pixel_bomb_png() -> bytes:
    """The issue's bomb: 6324x6324 one-bit PNG, ~12 kB, ~160 MB once decoded to RGB."""
    return one_bit_png(BOMB_SIDE)


SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="600" height="900">'
    b'<rect width="600" height="900" fill="red"/></svg>\n'
)

# name -> (builder, words the reason must contain: any one of them)
BAD_IMAGES: dict[str, tuple[Callable[[], bytes], tuple[str, ...]]] = {
    "zero-bytes": (lambda: b"", ("empty",)),
    "text": (lambda: b"Casablanca, 1942, a love story\n", ("not an image",)),
    "truncated-jpeg": (_truncated_jpeg, ("truncated",)),
    "animated-gif": (_animated_gif, ("unsupported image format GIF",)),
    "tiff": (lambda: encode(poster_rgb(), "TIFF"), ("unsupported image format TIFF",)),
    "bmp": (lambda: encode(poster_rgb(), "BMP"), ("unsupported image format BMP",)),
    "svg": (lambda: SVG, ("unsupported image format SVG",)),
    "eps": (lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 60 90\n", ("EPS",)),
    "huge-jpeg": (huge_jpeg, ("4096x4097", "too large")),
    "pixel-bomb-png": (pixel_bomb_png, ("6324x6324", "too large")),
}


def bad_image(name: str) -> bytes:
    return BAD_IMAGES[name][0]()


def expected_words(name: str) -> tuple[str, ...]:
    return BAD_IMAGES[name][1]


# --------------------------------------------------------------------------- request level
def fifty_mb_value() -> str:
    """One 'image' of 50 MB of valid base64 (a JPEG header followed by zeros)."""
    head = b64(poster_jpeg()[:300])
    head = head[: len(head) // 4 * 4]
    return head + "A" * (50_000_000 - len(head))


def batch_with_one_bad_row(n: int = 500, bad_row: int = 317) -> list[str]:
    """``n`` small valid posters, row ``bad_row`` replaced by a truncated JPEG."""
    good = [b64(poster_jpeg(seed=k % 7)) for k in range(n)]
    good[bad_row] = b64(_truncated_jpeg())
    return good
