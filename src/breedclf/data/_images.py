"""Decode any common image file into an 8-bit RGB PIL image, or fail with a clear reason."""

from __future__ import annotations

import contextlib
import io
import math
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TypeAlias

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from breedclf.errors import ImageDecodeError

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "ImageSource", "load_image", "to_rgb"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)

ImageSource: TypeAlias = str | Path | bytes | bytearray | BinaryIO | Image.Image

# breedclf's one image-size limit: training, evaluation, `predict` and both serving paths (the
# HTTP server and the SageMaker handler) refuse images with more pixels than this, so an image
# that trains also serves. 80 Mpx lets any camera photo through (phones take 12–50 Mpx) and is
# below Pillow's own bomb warning (89 Mpx), so this limit always speaks first, readably.
DEFAULT_MAX_PIXELS = 80_000_000

_pillow_guard_lock = threading.Lock()
_pillow_guard_users = 0
_pillow_guard_saved: int | None = None


def load_image(
    source: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
) -> Image.Image:
    """Open ``source`` and return a fully decoded 8-bit RGB image.

    EXIF orientation is applied; grayscale, palette, CMYK, alpha and 16-bit images are converted
    (transparent areas become white).

    Args:
        source: A path, raw bytes, a binary file object or an already open PIL image.
        max_pixels: Refuse images with more pixels than this before decoding them (decompression
            bombs). ``None`` disables the check, Pillow's own ``Image.MAX_IMAGE_PIXELS`` guard
            included; so does a limit above it (the given limit then replaces Pillow's).
        draft_size: For JPEGs, let the decoder downscale by 1/2, 1/4 or 1/8 as long as both sides
            stay at least this large — several times faster for photos much larger than the model
            input.

    Raises:
        ImageDecodeError: The data is not an image, is truncated or corrupt, or is too large.
    """
    name = str(source) if isinstance(source, str | Path) else "image data"
    try:
        return _decode(source, name, max_pixels, draft_size)
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError(f"{name} does not exist") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{name} is not a recognised image format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"{name} is too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"{name} is corrupt or truncated: {exc}") from None


def _decode(
    source: ImageSource, name: str, max_pixels: int | None, draft_size: int | None
) -> Image.Image:
    with lift_pillow_guard(max_pixels):
        return _open_and_load(source, name, max_pixels, draft_size)


def _open_and_load(
    source: ImageSource, name: str, max_pixels: int | None, draft_size: int | None
) -> Image.Image:
    if isinstance(source, Image.Image):
        image = source
    else:
        fp: str | Path | BinaryIO = (
            io.BytesIO(bytes(source)) if isinstance(source, bytes | bytearray) else source
        )
        with warnings.catch_warnings():
            # Pillow warns from 89 Mpx; our own check right below then gives the readable answer.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(fp)
    try:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageDecodeError(f"{name} has an empty size {width}x{height}")
        if max_pixels is not None and width * height > max_pixels:
            raise ImageDecodeError(
                f"{name} is {width}x{height} = {width * height:,} pixels, over the limit of "
                f"{max_pixels:,}"
            )
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", (draft_size, draft_size))
        image.load()
        return to_rgb(image)
    except BaseException:
        # Pillow closes a file it opened only after a successful load; never leak it.
        if image is not source:
            image.close()
        raise


@contextlib.contextmanager
def lift_pillow_guard(max_pixels: int | None) -> Iterator[None]:
    """Let ``max_pixels`` replace Pillow's own bomb guard when it is looser (or ``None``).

    Callers check the size from the header before any pixel is decoded, so Pillow's guard then
    adds nothing; left on, it would refuse what the caller allowed. Pillow reads its
    process-wide ``Image.MAX_IMAGE_PIXELS`` at each check: a count of the callers inside keeps
    concurrent decodes from restoring it under one another. A limit at or below Pillow's (the
    default) changes nothing.
    """
    global _pillow_guard_users, _pillow_guard_saved
    with _pillow_guard_lock:
        pillow = Image.MAX_IMAGE_PIXELS if _pillow_guard_users == 0 else _pillow_guard_saved
        lift = pillow is not None and (max_pixels is None or max_pixels > pillow)
        if lift:
            if _pillow_guard_users == 0:
                _pillow_guard_saved = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = None
            _pillow_guard_users += 1
    try:
        yield
    finally:
        if lift:
            with _pillow_guard_lock:
                _pillow_guard_users -= 1
                if _pillow_guard_users == 0:
                    Image.MAX_IMAGE_PIXELS = _pillow_guard_saved


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a decoded image of any mode to 8-bit RGB, honouring EXIF orientation."""
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}:
        image = _high_depth_to_l(image)
        mode = "L"
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in {"RGBA", "LA", "PA", "La", "RGBa"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """Map a 16/32-bit or float grayscale image onto 0..255 by its nominal range."""
    array = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
        scale = 255.0 / (hi - lo) if hi > lo and math.isfinite(hi - lo) else 0.0
        array = (np.nan_to_num(array, nan=lo) - lo) * scale
    else:
        # 16-bit files use the full 0..65535 range; "I" images decoded from 8-bit data stay small.
        peak = 65535.0 if array.max(initial=0) > 255 or image.mode.startswith("I;16") else 255.0
        array = array * (255.0 / peak)
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")
