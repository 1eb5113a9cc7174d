from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from breedclf.data import load_image
from breedclf.errors import ImageDecodeError
from tests.conftest import jpeg_bytes


def _png(image: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", **save)
    return buf.getvalue()


def test_cmyk_jpeg_becomes_rgb() -> None:
    out = load_image(jpeg_bytes(Image.new("CMYK", (16, 16), (0, 255, 0, 0)), quality=100))
    assert out.mode == "RGB"
    r, g, b = out.getpixel((8, 8))  # type: ignore[misc]
    assert r > 240 and g < 15 and b > 240  # magenta


def test_palette_png_with_alpha_composites_on_white() -> None:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    out = load_image(_png(image, transparency=0))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent → white
    assert out.getpixel((4, 4)) == (255, 0, 0)


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    out = np.asarray(load_image(_png(Image.fromarray(ramp))))
    assert out.shape == (64, 64, 3)
    assert out.min() == 0 and out.max() == 255
    assert 100 < out[32, 0, 0] < 160  # mid-range stays mid-range


def test_grayscale_and_rgba() -> None:
    assert load_image(_png(Image.new("L", (4, 4), 7))).getpixel((0, 0)) == (7, 7, 7)
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 255))
    assert load_image(_png(rgba)).getpixel((0, 0)) == (10, 20, 30)


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    out = load_image(jpeg_bytes(image, exif=exif.tobytes()))
    assert out.size == (20, 40)


def test_truncated_jpeg_is_a_clear_error() -> None:
    data = jpeg_bytes(Image.effect_noise((128, 128), 64).convert("RGB"))
    with pytest.raises(ImageDecodeError, match="truncated"):
        load_image(data[: len(data) // 2])


def test_not_an_image_and_missing_file(tmp_path: object) -> None:
    with pytest.raises(ImageDecodeError, match="not a recognised image"):
        load_image(b"definitely not pixels")
    with pytest.raises(ImageDecodeError, match="does not exist"):
        load_image("/nonexistent/image.jpg")


def test_pixel_limit_refuses_before_decoding() -> None:
    data = _png(Image.new("L", (2000, 2000)))
    with pytest.raises(ImageDecodeError, match="over the limit of 1,000,000"):
        load_image(data, max_pixels=1_000_000)


def test_draft_decoding_keeps_requested_size() -> None:
    data = jpeg_bytes(Image.new("RGB", (1600, 1200), (1, 2, 3)))
    out = load_image(data, draft_size=256)
    assert min(out.size) >= 256
    assert out.size[0] < 1600  # the decoder downscaled
