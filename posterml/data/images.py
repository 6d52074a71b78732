"""Safe image decoding shared by training, feature extraction, batch prediction and serving.

One decoder everywhere means a poster is turned into pixels the same way in training and in
serving. Every failure (truncated file, zero bytes, not an image, a format that is not
accepted, decompression bomb) becomes an ``ImageDecodeError`` with a short reason, so callers
can report and skip instead of crashing.

Decoding happens in two steps, so that a server can check a whole request from the headers
before it decodes any pixel: ``open_image`` reads the header only (format, size), and
``finish_decode`` decodes, straight towards the size the model needs (``min_size``), turns
the image upright as its EXIF orientation says, then converts to 8-bit RGB.
``decode_image`` does both.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

# Posters are at most a few megapixels; far above is a mistake or an attack. 16 Mpx bounds
# one decode to ~64 MB. Counted as decoded: a baseline JPEG decoded towards the model's
# size at its 1/2-1/8 scale, a progressive JPEG, PNG or WebP in full (README: measurements).
# The server's limit defaults to this and is configurable (serving/limits.py).
MAX_IMAGE_PIXELS = 16_000_000

# The formats the decoder opens: what posters come as (TMDb serves JPEG, the web PNG/WebP).
# Every other Pillow plugin stays closed: GIF/TIFF/BMP/ICO/PSD... are not posters, and some
# plugins reach far (EPS runs Ghostscript where it is installed).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
ACCEPTED_TEXT = "JPEG, PNG, WebP"

# Decoding may shrink an image, but never below REDUCING_GAP times the model's input size in
# either dimension: the final bilinear resize then still averages >= 3 decoded pixels per
# output pixel, close to resizing from full resolution (Pillow's resize(reducing_gap=...));
# posters of ~300x450 are not shrunk at all.
REDUCING_GAP = 3

# Bumped whenever the same bytes may decode to different pixels (feature caches key on it).
DECODER_VERSION = 3
# EXIF orientations that swap width and height (the four 90-degree ones).
_SIDEWAYS = (5, 6, 7, 8)

# Magic numbers of formats that are refused, to say what was sent instead of "not an image".
_REFUSED_MAGIC = (
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%!PS", "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"%PDF", "PDF"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
)

_ALPHA_MODES = ("LA", "PA", "RGBA", "RGBa")
_REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "CMYK")
_WHITE = (255, 255, 255)


class ImageDecodeError(ValueError):
    """An image could not be decoded; ``reason`` says why in a few words."""

    def __init__(self, reason: str, source: str = "") -> None:
        self.reason = reason
        self.source = source
        super().__init__(f"{source}: {reason}" if source else reason)


class ImageTooLarge(ImageDecodeError):
    """An image has more pixels than allowed (known from its header, nothing decoded)."""


def _refused_format(data: bytes) -> str | None:
    """The name of a known but refused format, from the first bytes (None if unknown)."""
    for magic, name in _REFUSED_MAGIC:
        if data.startswith(magic):
            return name
    if data.startswith(b"BM") and data[6:10] == b"\x00\x00\x00\x00":  # + size, reserved 0
        return "BMP"
    head = data[:512].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) and b"<svg" in data[:4096].lower():
        return "SVG"
    return None


def open_image(
    data: bytes,
    source: str = "",
    max_pixels: int | None = MAX_IMAGE_PIXELS,
    *,
    limit_name: str = "",
    min_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Read the header of image bytes: a lazy ``PIL.Image`` (format and size known, no pixels).

    Raises ``ImageDecodeError`` for empty input and formats outside ``ACCEPTED_FORMATS``,
    ``ImageTooLarge`` above ``max_pixels`` (None: Pillow's own bomb guard only); the message
    names the limit as ``limit_name`` (e.g. the variable that sets it) when given. With
    ``min_size`` (the model's input size, as for ``finish_decode``) a baseline JPEG is set
    to decode at reduced scale, and ``size`` and the limit are those of the reduced image.
    """
    if not data:
        raise ImageDecodeError("empty image (0 bytes)", source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        refused = _refused_format(data)
        if refused:
            raise ImageDecodeError(
                f"unsupported image format {refused} (accepted: {ACCEPTED_TEXT})", source
            ) from None
        raise ImageDecodeError("not an image (unrecognised format)", source) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (~89 Mpx) fires inside open(), before our check can: same verdict.
        raise ImageTooLarge(f"image too large (decompression bomb guard): {exc}", source) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}", source) from None
    width, height = image.size
    if min_size is not None:
        _draft(image, min_size)
    # A baseline JPEG costs what it decodes to (its drafted size, the full size if undrafted).
    counted = image.width * image.height if _baseline_jpeg(image) else width * height
    if max_pixels is not None and counted > max_pixels:
        raise ImageTooLarge(
            f"image too large: {width}x{height} = {width * height:,} pixels "
            f"(limit {max_pixels:,} pixels per image{', ' + limit_name if limit_name else ''})",
            source,
        )
    return image


def decoded_pixels(
    data: bytes,
    source: str = "",
    max_pixels: int | None = MAX_IMAGE_PIXELS,
    *,
    limit_name: str = "",
    min_size: tuple[int, int] | None = None,
) -> int:
    """The pixels decoding ``data`` towards ``min_size`` will hold, read from its header
    alone; raises as ``open_image`` does. A server sums these before decoding anything."""
    image = open_image(data, source, max_pixels, limit_name=limit_name, min_size=min_size)
    return image.width * image.height


def finish_decode(
    image: Image.Image, source: str = "", min_size: tuple[int, int] | None = None
) -> Image.Image:
    """Decode an ``open_image`` result into a loaded 8-bit RGB ``PIL.Image``.

    With ``min_size`` = (height, width), the model's input size, the image is decoded
    smaller where it is much larger: JPEG at 1/2, 1/4 or 1/8 scale in the decoder itself
    (``Image.draft``: the full-size pixels never exist), other formats by integer box
    reduction right after decoding, never below ``REDUCING_GAP`` x ``min_size``.

    The image is turned upright as its EXIF orientation says: cameras and phones store a
    photo as the sensor saw it and record the turn, which every viewer applies, so a dealer's
    photo of a poster shows upright but a decoder that ignores the tag hands the model a
    sideways poster. Every mode becomes 8-bit RGB faithfully: 16-bit gray/RGB scaled to 8
    bits (a 16-bit PNG gives its 8-bit twin's pixels), transparency composited on white,
    palette, CMYK and 1-bit converted.
    """
    if min_size is not None:
        _draft(image, min_size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"image too large (decompression bomb guard): {exc}", source) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}", source) from None
    image = _upright(image)
    image = _to_8bit(image, source)
    if min_size is not None:
        image = _reduce(image, min_size)
    return to_rgb(image)


def decode_image(
    data: bytes,
    source: str = "",
    *,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
    min_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode image bytes into a fully loaded 8-bit RGB ``PIL.Image``.

    Raises ``ImageDecodeError`` for empty input, formats outside ``ACCEPTED_FORMATS``,
    truncated data, and (``ImageTooLarge``) images above ``max_pixels`` (checked from the
    header, before any pixel is decoded). ``min_size`` = (height, width) lets the decoder
    shrink large images towards the model's input size (see ``finish_decode``).
    """
    return finish_decode(open_image(data, source, max_pixels, min_size=min_size), source, min_size)


def _draft(image: Image.Image, min_size: tuple[int, int]) -> None:
    """Set a JPEG to decode at the smallest 1/2-1/8 scale keeping ``REDUCING_GAP`` x
    ``min_size`` (in the upright frame); other formats, and a second call, change nothing."""
    if image.format not in ("JPEG", "MPO"):
        return
    height, width = min_size
    if _orientation(image) in _SIDEWAYS:  # stored sideways: the draft size turns too
        height, width = width, height
    image.draft(None, (max(1, width * REDUCING_GAP), max(1, height * REDUCING_GAP)))


def _baseline_jpeg(image: Image.Image) -> bool:
    """A JPEG libjpeg decodes without holding every coefficient (memory ~ its output)."""
    return image.format in ("JPEG", "MPO") and not image.info.get("progressive")


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8; 1 = stored upright); 1 when absent or unreadable."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
        return value if value in range(1, 9) else 1
    except Exception:  # a broken EXIF block must not cost the poster: show it as stored
        return 1


def _upright(image: Image.Image) -> Image.Image:
    """A loaded image turned as its EXIF orientation says (Pillow's ``exif_transpose``)."""
    if _orientation(image) == 1:
        return image
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # as in _orientation: pixels are fine, the tag is not
        return image


def _to_8bit(image: Image.Image, source: str) -> Image.Image:
    """A mode Pillow can reduce and convert without losing range (L, LA, RGB(A), CMYK...).

    ``convert("RGB")`` of a 16-bit gray image (mode ``I;16``, how Pillow opens 16-bit gray
    PNGs) clips every value above 255 to white; here 0..65535 keeps its high byte instead,
    as Pillow does for 16-bit RGB PNGs, so an 8-bit value v stored as v * 257 gives v back.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":  # "I" (32-bit): read as 16-bit, clipped
        wide = np.asarray(image)
        if mode == "I":
            wide = np.clip(wide, 0, 65535)
        return Image.fromarray((wide.astype(np.uint16) >> 8).astype(np.uint8), "L")
    if mode == "F":
        raise ImageDecodeError("unsupported pixel mode F (floating point)", source)
    if mode == "1":
        return image.convert("L")
    if mode == "P":
        # A palette may hold transparency (tRNS); only RGBA keeps it for compositing.
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode == "PA":
        return image.convert("RGBA")
    if mode in ("L", "RGB") and "transparency" in image.info:  # a tRNS colour key
        return image.convert("LA" if mode == "L" else "RGBA")
    return image


def _reduce(image: Image.Image, min_size: tuple[int, int]) -> Image.Image:
    """Box-reduce by whole factors per axis, keeping >= REDUCING_GAP x ``min_size``."""
    height, width = min_size
    factor_x = max(1, image.width // max(1, width * REDUCING_GAP))
    factor_y = max(1, image.height // max(1, height * REDUCING_GAP))
    if (factor_x, factor_y) == (1, 1) or image.mode not in _REDUCIBLE_MODES:
        return image
    return image.reduce((factor_x, factor_y))


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit image as RGB; transparent pixels become white (posters are seen on white)."""
    if image.mode == "RGB":
        return image
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def read_image_file(path: str | Path) -> bytes:
    """The bytes of an image file; a missing or unreadable file is an ``ImageDecodeError``."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file: {exc.strerror}", str(path)) from None


def load_image(
    path: str | Path,
    *,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
    min_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Read and decode an image file; a missing file is an ``ImageDecodeError`` too."""
    data = read_image_file(path)
    return decode_image(data, str(path), max_pixels=max_pixels, min_size=min_size)


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
