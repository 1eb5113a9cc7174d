"""The wire protocol shared by the SageMaker handler and the HTTP server.

Everything that turns request bytes into images and predictions into response bytes lives here,
once, so the local server and the SageMaker container accept exactly the same requests and
answer with exactly the same JSON. Nothing here imports a web framework.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from PIL import Image, UnidentifiedImageError

from breedclf.data._images import DEFAULT_MAX_PIXELS, lift_pillow_guard
from breedclf.errors import BreedclfError

__all__ = [
    "ALLOWED_IMAGE_FORMATS",
    "CUSTOM_ATTRIBUTES_HEADER",
    "DEFAULT_TOP_K",
    "IMAGE_CONTENT_TYPES",
    "JSON_CONTENT_TYPE",
    "SUPPORTED_CONTENT_TYPES",
    "RequestError",
    "RequestLimits",
    "check_image_header",
    "encode_error",
    "encode_predictions",
    "negotiate_accept",
    "parse_body",
    "parse_content_type",
    "parse_custom_attributes",
    "parse_top_k",
]

JSON_CONTENT_TYPE = "application/json"
IMAGE_CONTENT_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
        "image/bmp",
        "image/tiff",
        "application/x-image",
        "application/octet-stream",
    }
)
SUPPORTED_CONTENT_TYPES = (*sorted(IMAGE_CONTENT_TYPES), JSON_CONTENT_TYPE)
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
DEFAULT_TOP_K = 5
MAX_TOP_K = 1000

# Only decoders that are common for photos and need no external program: Pillow's EPS plugin,
# for one, runs Ghostscript on untrusted input. Content types are not trusted: the bytes are
# sniffed, and anything outside this list is refused before a decoder runs.
ALLOWED_IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

_JSON_KEYS = ("image", "instances")
_DATA_URI = re.compile(r"^data:[\w.+-]+/[\w.+-]+(;[\w.+-]+=[\w.+-]+)*;base64,", re.ASCII)
_WHITESPACE = re.compile(rb"\s+")


class RequestError(BreedclfError, ValueError):
    """A request the endpoint refuses, with the HTTP status to answer and a readable reason.

    Attributes:
        status_code: The 4xx (or 503) status to send.
        reason: What was wrong and how to fix it; sent to the client.
    """

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = int(status_code)
        self.reason = reason


@dataclass(frozen=True)
class RequestLimits:
    """Bounds that keep one request from exhausting the server.

    Attributes:
        max_body_bytes: Largest request body (SageMaker real-time endpoints allow 6 MiB).
        max_pixels: Largest image, in pixels, that is decoded (decompression bombs); by default
            breedclf's one limit, the same as in training (``DEFAULT_MAX_PIXELS``, 80 Mpx).
        max_aspect_ratio: Longest side / shortest side; beyond it, resizing the short side to
            the model's size would blow a thin strip up into a huge image.
        max_instances: Most images in one JSON ``instances`` batch.
    """

    max_body_bytes: int = 6 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_aspect_ratio: float = 30.0
    max_instances: int = 32


@dataclass(frozen=True)
class ParsedBody:
    """The images of one request, still encoded, and whether the request was a batch."""

    images: list[bytes] = field(default_factory=list)
    batch: bool = False


def parse_content_type(content_type: str | None) -> str:
    """Normalise a ``Content-Type`` header and check that it is supported.

    Raises:
        RequestError: 415 when missing or not one of :data:`SUPPORTED_CONTENT_TYPES`.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not media:
        raise RequestError(
            415,
            "missing Content-Type header; send an image with its type (e.g. image/jpeg) or "
            f"base64 JSON as application/json. Supported: {', '.join(SUPPORTED_CONTENT_TYPES)}",
        )
    if media != JSON_CONTENT_TYPE and media not in IMAGE_CONTENT_TYPES:
        raise RequestError(
            415,
            f"unsupported Content-Type {media!r}; supported: {', '.join(SUPPORTED_CONTENT_TYPES)}",
        )
    return media


def negotiate_accept(accept: str | None) -> str:
    """The response type for an ``Accept`` header: always JSON, or a 406.

    A missing header, ``*/*``, ``application/*`` and ``application/json`` (with any parameters
    or quality above zero, in any position of a list) all accept JSON.

    Raises:
        RequestError: 406 when the client accepts no JSON.
    """
    if accept is None or not accept.strip():
        return JSON_CONTENT_TYPE
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() not in {"*/*", "application/*", JSON_CONTENT_TYPE}:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            return JSON_CONTENT_TYPE
    raise RequestError(
        406,
        f"cannot answer with any type in Accept: {accept[:200]!r}; this endpoint answers "
        f"{JSON_CONTENT_TYPE} (send Accept: {JSON_CONTENT_TYPE} or */*)",
    )


def parse_custom_attributes(value: str | None) -> dict[str, str]:
    """Parse SageMaker custom attributes such as ``"top_k=3; trace=abc"`` into a dict."""
    out: dict[str, str] = {}
    for item in re.split(r"[;,]", value or ""):
        key, sep, val = item.partition("=")
        if sep and key.strip():
            out[key.strip().lower()] = val.strip()
    return out


def parse_top_k(raw: str | None, *, default: int = DEFAULT_TOP_K) -> int:
    """Validate a ``top_k`` value from a query string or custom attribute.

    Raises:
        RequestError: 400 when it is not an integer from 1 to 1000.
    """
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_TOP_K:
        raise RequestError(400, f"top_k must be an integer from 1 to {MAX_TOP_K}, got {raw[:50]!r}")
    return value


def parse_body(body: bytes | bytearray | str, media_type: str, limits: RequestLimits) -> ParsedBody:
    """Split a request body into encoded images.

    Args:
        body: The raw body (``str`` when the SageMaker toolkit already decoded JSON as UTF-8).
        media_type: The normalised content type from :func:`parse_content_type`.
        limits: Size and count bounds.

    Raises:
        RequestError: 400 for an empty body, bad JSON or bad base64; 413 for too much data.
    """
    size = len(body)
    if size == 0:
        raise RequestError(400, "empty request body; send image bytes or base64 JSON")
    if size > limits.max_body_bytes:
        raise RequestError(413, _too_large(size, limits.max_body_bytes))
    if media_type != JSON_CONTENT_TYPE:
        if isinstance(body, str):
            raise RequestError(400, f"a {media_type} body must be binary image data")
        return ParsedBody([bytes(body)], batch=False)
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise RequestError(400, "body is not valid JSON: nested too deeply") from None
    if not isinstance(document, dict) or set(document) not in ({"image"}, {"instances"}):
        keys = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise RequestError(
            400,
            'JSON body must be an object with exactly one key, "image" (a base64 string) or '
            f'"instances" (a list of base64 strings); got {str(keys)[:200]}',
        )
    if "image" in document:
        return ParsedBody([_decode_base64(document["image"], "image")], batch=False)
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, '"instances" must be a non-empty list of base64 strings')
    if len(instances) > limits.max_instances:
        raise RequestError(
            413, f"{len(instances)} instances in one request; the limit is {limits.max_instances}"
        )
    images = []
    for i, item in enumerate(instances):
        if isinstance(item, dict) and set(item) == {"image"}:
            item = item["image"]
        images.append(_decode_base64(item, f"instances[{i}]"))
    return ParsedBody(images, batch=True)


def _decode_base64(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise RequestError(400, f"{where} must be a base64 string, got {type(value).__name__}")
    text = _DATA_URI.sub("", value, count=1)
    try:
        raw = _WHITESPACE.sub(b"", text.encode("ascii"))
    except UnicodeEncodeError:
        raise RequestError(400, f"{where} is not valid base64: non-ASCII characters") from None
    if b"-" in raw or b"_" in raw:
        raw = raw.translate(bytes.maketrans(b"-_", b"+/"))
    raw += b"=" * (-len(raw) % 4)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(400, f"{where} is not valid base64: {exc}") from None
    if not data:
        raise RequestError(400, f"{where} is empty")
    return data


def check_image_header(data: bytes, limits: RequestLimits) -> tuple[str, int, int]:
    """Identify an encoded image from its header, without decoding its pixels.

    Returns:
        The Pillow format name, width and height.

    Raises:
        RequestError: 400 when the bytes are not an image of an allowed format or have absurd
            dimensions; 413 when the image has more pixels than allowed.
    """
    try:
        with warnings.catch_warnings(), lift_pillow_guard(limits.max_pixels):
            # Pillow's own bomb guard warns first; our limit below gives the readable answer.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ALLOWED_IMAGE_FORMATS) as image:
                fmt, (width, height) = str(image.format), image.size
    except UnidentifiedImageError:
        raise RequestError(
            400,
            "body is not an image in a supported format "
            f"({', '.join(ALLOWED_IMAGE_FORMATS)}); first bytes: {data[:8]!r}",
        ) from None
    except Image.DecompressionBombError as exc:
        raise RequestError(413, f"image has too many pixels to decode safely: {exc}") from None
    except MemoryError:
        raise
    except Exception as exc:  # any parser failure on client bytes is the client's error
        raise RequestError(
            400, f"image header is corrupt: {type(exc).__name__}: {exc}"[:500]
        ) from None
    if width < 1 or height < 1:
        raise RequestError(400, f"image has an empty size {width}x{height}")
    if width * height > limits.max_pixels:
        raise RequestError(
            413,
            f"image is {width}x{height} = {width * height:,} pixels; the limit is "
            f"{limits.max_pixels:,} (resize it before sending)",
        )
    if max(width, height) / min(width, height) > limits.max_aspect_ratio:
        raise RequestError(
            400,
            f"image is {width}x{height}, an aspect ratio over the limit of "
            f"{limits.max_aspect_ratio:g}:1",
        )
    return fmt, width, height


def encode_predictions(predictions: Sequence[Sequence[Mapping[str, Any]]], *, batch: bool) -> bytes:
    """The JSON response: ``{"predictions": [...]}``, one list per image for a batch."""
    body: object = [list(p) for p in predictions] if batch else list(predictions[0])
    return json.dumps({"predictions": body}, separators=(",", ":")).encode("utf-8")


def encode_error(status_code: int, reason: str) -> bytes:
    """The JSON error body: ``{"error": phrase, "status": code, "reason": text}``."""
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = "Error"
    return json.dumps({"error": phrase, "status": status_code, "reason": reason}).encode("utf-8")


def _too_large(size: int, limit: int) -> str:
    return f"request body is {size:,} bytes; the limit is {limit:,} bytes ({limit / 2**20:g} MiB)"
