"""``load_image``'s pixel limit: breedclf's one limit, and ``None`` really lifts it."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from breedclf.data import load_image
from breedclf.data._images import DEFAULT_MAX_PIXELS
from breedclf.errors import ImageDecodeError

# 90 Mpx: past Pillow's own bomb guard (89.5 Mpx) and breedclf's limit (80 Mpx). Bilevel, so
# the PNG is a few kilobytes and decodes in about a second.
BIG = (10_000, 9_000)


@pytest.fixture(scope="module")
def big_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", BIG).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_default_limit_refuses_with_its_own_message(big_png: bytes) -> None:
    with pytest.raises(ImageDecodeError, match=f"over the limit of {DEFAULT_MAX_PIXELS:,}"):
        load_image(big_png)


@pytest.mark.parametrize(
    "max_pixels",
    [pytest.param(None, id="none-disables"), pytest.param(100_000_000, id="above-pillows")],
)
def test_none_or_a_higher_limit_decodes_what_pillow_alone_would_refuse(
    big_png: bytes, max_pixels: int | None
) -> None:
    guard = Image.MAX_IMAGE_PIXELS
    image = load_image(big_png, max_pixels=max_pixels)
    assert image.size == BIG
    assert image.mode == "RGB"
    assert guard == Image.MAX_IMAGE_PIXELS  # Pillow's process-wide guard is put back
