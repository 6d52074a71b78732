"""The decoder: an explicit list of formats, every pixel mode converted faithfully to 8-bit
RGB, and decoding straight towards the model's input size."""

from __future__ import annotations

import io

import numpy as np
import pytest
from bad_inputs import (
    BAD_IMAGES,
    ODD_GOOD_IMAGES,
    as_camera_stores,
    bad_image,
    encode,
    expected_words,
    phone_photo_jpeg,
    png8,
    png16_twin,
    png_by_hand,
    poster_array,
    poster_jpeg,
    poster_rgb,
)
from PIL import Image

from posterml.data import images
from posterml.data.images import (
    ImageDecodeError,
    ImageTooLarge,
    decode_image,
    open_image,
    resize_gray,
    resize_rgb,
)


# --------------------------------------------------------------------------- the corpus
@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_decoder_refuses_bad_inputs_with_a_reason(case: str) -> None:
    with pytest.raises(ImageDecodeError) as err:
        decode_image(bad_image(case))
    assert any(word in err.value.reason for word in expected_words(case)), err.value.reason


@pytest.mark.parametrize("case", list(ODD_GOOD_IMAGES))
def test_decoder_accepts_odd_but_valid_posters(case: str) -> None:
    image = decode_image(ODD_GOOD_IMAGES[case](), min_size=(224, 224))  # as every door does
    assert image.mode == "RGB" and np.asarray(image).dtype == np.uint8


def test_the_pixel_limit_counts_what_is_decoded() -> None:
    """A baseline JPEG decoded towards the model's size is decoded at reduced scale, and
    counted so: a 24 Mpx phone photo passes the 16 Mpx limit for a model, not in full; a
    progressive JPEG (whose coefficients are all kept) and a PNG count in full either way."""
    photo = phone_photo_jpeg()
    opened = open_image(photo, min_size=(224, 224))
    assert opened.size == (1428, 1071)  # 1/4 scale: still >= 3 x 224 both ways
    decoded = decode_image(photo, min_size=(224, 224))
    assert min(decoded.size) >= images.REDUCING_GAP * 224 and decoded.width <= 1428
    with pytest.raises(ImageTooLarge, match="5712x4284"):
        decode_image(photo)
    with pytest.raises(ImageTooLarge, match="4096x4097"):
        decode_image(bad_image("huge-jpeg"), min_size=(224, 224))
    with pytest.raises(ImageTooLarge, match="6324x6324"):
        decode_image(bad_image("pixel-bomb-png"), min_size=(224, 224))


def test_only_jpeg_png_webp_are_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused formats never reach their Pillow plugin (EPS would start Ghostscript)."""
    from PIL import EpsImagePlugin, GifImagePlugin

    def boom(*args, **kwargs):
        raise AssertionError("a refused format's plugin was called")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", boom)
    monkeypatch.setattr(GifImagePlugin.GifImageFile, "_open", boom)
    for case in ("eps", "animated-gif"):
        with pytest.raises(ImageDecodeError, match="unsupported image format"):
            decode_image(bad_image(case))
    assert images.ACCEPTED_FORMATS == ("JPEG", "PNG", "WEBP")


def test_too_large_is_known_from_the_header() -> None:
    with pytest.raises(ImageTooLarge, match="6324x6324"):
        open_image(bad_image("pixel-bomb-png"))
    lazy = open_image(bad_image("huge-jpeg"), max_pixels=None)
    assert lazy.size == (4096, 4097) and lazy.tile  # tiles not decoded yet


# --------------------------------------------------------------------------- pixel modes
def test_16bit_gray_png_gives_its_8bit_twins_pixels() -> None:
    gray = np.asarray(poster_rgb().convert("L"))
    wide = Image.open(io.BytesIO(png16_twin(gray)))
    assert wide.mode.startswith("I;16")  # what convert("RGB") alone turns white
    got = np.asarray(decode_image(png16_twin(gray))).astype(int)
    want = np.asarray(decode_image(png8(gray))).astype(int)
    assert np.abs(got - want).max() <= 1
    assert got[..., 0].mean() == pytest.approx(gray.mean(), abs=1)  # not white


def test_16bit_rgb_png_gives_its_8bit_twins_pixels() -> None:
    rgb = poster_array()
    got = np.asarray(decode_image(png16_twin(rgb))).astype(int)
    want = np.asarray(decode_image(png8(rgb))).astype(int)
    assert np.abs(got - want).max() <= 1


def test_16bit_values_are_scaled_not_clipped() -> None:
    ramp = (np.arange(0, 65536, 256, dtype=np.uint16).reshape(16, 16)).astype(">u2")
    data = png_by_hand(16, 16, 16, 0, [ramp[i].tobytes() for i in range(16)])
    got = np.asarray(decode_image(data))[..., 0]
    np.testing.assert_array_equal(got.ravel(), np.arange(256))


def test_transparency_is_composited_on_white() -> None:
    got = np.asarray(decode_image(ODD_GOOD_IMAGES["rgba-png"]()))
    np.testing.assert_array_equal(got[:, 30:], 255)  # transparent black -> white, not black
    np.testing.assert_array_equal(got[:, :30], poster_array()[:, :30])  # opaque: unchanged
    half = np.zeros((4, 4, 4), np.uint8)
    half[..., 3] = 128  # black at 50% alpha: mid gray
    mid = np.asarray(decode_image(encode(Image.fromarray(half, "RGBA"), "PNG")))
    assert np.abs(mid.astype(int) - 127).max() <= 1
    la = np.asarray(
        decode_image(encode(Image.fromarray(np.zeros((4, 4, 2), np.uint8), "LA"), "PNG"))
    )
    np.testing.assert_array_equal(la, 255)


def test_palette_with_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    image.putpixel((0, 0), 0)  # index 0 is the transparent one
    got = np.asarray(decode_image(encode(image, "PNG", transparency=0)))
    np.testing.assert_array_equal(got[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(got[1, 1], [200, 30, 30])


def test_cmyk_one_bit_and_gray_become_the_right_rgb() -> None:
    reference = poster_array().astype(int)
    cmyk = np.asarray(decode_image(ODD_GOOD_IMAGES["cmyk-jpeg"]())).astype(int)
    assert np.abs(cmyk - reference).mean() < 8  # JPEG loss only, no inverted channels
    one = np.asarray(decode_image(ODD_GOOD_IMAGES["1bit-png"]()))
    assert set(np.unique(one)) <= {0, 255}
    gray = np.asarray(decode_image(ODD_GOOD_IMAGES["grayscale-jpeg"]()))
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


# --------------------------------------------------------------------------- decoding smaller
def test_normal_posters_are_not_shrunk() -> None:
    """~300x450 posters going to 224x224 or 150x100: bit-identical pixels."""
    data = poster_jpeg(width=300, height=450)
    for size in [(224, 224), (150, 100)]:
        full = decode_image(data)
        near = decode_image(data, min_size=size)
        assert near.size == full.size
        np.testing.assert_array_equal(resize_rgb(near, size), resize_rgb(full, size))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_large_images_are_decoded_smaller_with_little_change(fmt: str) -> None:
    data = encode(poster_rgb(2000, 3000), fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    size = (224, 224)
    near = decode_image(data, min_size=size)
    # Never below REDUCING_GAP x the model size, and at least 4x fewer pixels than 2000x3000.
    assert min(near.size) >= images.REDUCING_GAP * 224
    assert near.width * near.height <= 2000 * 3000 / 4
    full = decode_image(data)
    drift = np.abs(resize_rgb(near, size).astype(int) - resize_rgb(full, size).astype(int))
    assert drift.mean() < 1.0, drift.mean()  # ~0.2 gray levels on real posters upscaled 4x
    gray = np.abs(resize_gray(near, size).astype(int) - resize_gray(full, size).astype(int))
    assert gray.mean() < 1.0


# --------------------------------------------------------------------------- orientation
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_the_poster_upright(orientation: int) -> None:
    """A phone photo is stored sideways with a tag saying how to turn it: posters come out
    upright, pixel for pixel (PNG: lossless)."""
    upright = poster_rgb(60, 90)
    decoded = decode_image(as_camera_stores(upright, orientation, "PNG"))
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(upright))


@pytest.mark.parametrize("size", [(224, 224), (150, 100)])
def test_a_sideways_jpeg_is_decoded_smaller_in_the_right_frame(size) -> None:
    """Decoding towards the model size keeps REDUCING_GAP x the size in the upright frame."""
    upright = poster_rgb(1400, 2100)
    data = as_camera_stores(upright, 6, "JPEG", quality=95)
    near = decode_image(data, min_size=size)
    full = decode_image(encode(upright, "JPEG", quality=95), min_size=size)
    assert near.size == full.size and near.height > near.width  # a portrait poster again
    drift = np.abs(resize_rgb(near, size).astype(int) - resize_rgb(full, size).astype(int))
    assert drift.mean() < 2.0, drift.mean()


def test_a_broken_exif_block_does_not_cost_the_poster() -> None:
    data = ODD_GOOD_IMAGES["broken-exif-jpeg"]()
    np.testing.assert_array_equal(
        np.asarray(decode_image(data)), np.asarray(decode_image(encode(poster_rgb(), "JPEG")))
    )
