"""The request/response protocol shared by the SageMaker handler and the HTTP server."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import pytest
from PIL import Image

from breedclf.serving import RequestError, RequestLimits
from breedclf.serving._protocol import (
    check_image_header,
    encode_error,
    encode_predictions,
    negotiate_accept,
    parse_body,
    parse_content_type,
    parse_custom_attributes,
    parse_top_k,
)
from tests.serving.conftest import encode

LIMITS = RequestLimits()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds a few bytes of data (a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("image/jpeg", "image/jpeg", id="jpeg"),
        pytest.param("IMAGE/PNG; charset=binary", "image/png", id="case-and-params"),
        pytest.param("application/x-image", "application/x-image", id="x-image"),
        pytest.param("application/octet-stream", "application/octet-stream", id="octet"),
        pytest.param("application/json; charset=utf-8", "application/json", id="json"),
    ],
)
def test_content_type_is_normalised(header: str, expected: str) -> None:
    assert parse_content_type(header) == expected


@pytest.mark.parametrize(
    ("header", "match"),
    [
        pytest.param(None, "missing Content-Type", id="missing"),
        pytest.param("", "missing Content-Type", id="empty"),
        pytest.param("text/plain", "unsupported Content-Type 'text/plain'", id="text"),
        pytest.param("multipart/form-data; boundary=x", "multipart/form-data", id="multipart"),
        pytest.param("image/heic", "image/heic", id="heic"),
    ],
)
def test_unsupported_content_type_is_415_naming_the_supported_ones(
    header: str | None, match: str
) -> None:
    with pytest.raises(RequestError, match=match) as info:
        parse_content_type(header)
    assert info.value.status_code == 415
    assert "image/jpeg" in info.value.reason


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "*/*",
        "application/json",
        "application/*",
        "application/json; charset=utf-8",
        "text/html, application/json;q=0.9",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",  # browsers
    ],
)
def test_accept_headers_that_admit_json(accept: str | None) -> None:
    assert negotiate_accept(accept) == "application/json"


@pytest.mark.parametrize(
    "accept", ["text/csv", "application/x-npy", "text/html", "application/json;q=0", "image/*"]
)
def test_accept_without_json_is_406(accept: str) -> None:
    with pytest.raises(RequestError, match="cannot answer") as info:
        negotiate_accept(accept)
    assert info.value.status_code == 406


def test_custom_attributes_and_top_k() -> None:
    attributes = parse_custom_attributes("trace=abc; Top_K = 3")
    assert attributes == {"trace": "abc", "top_k": "3"}
    assert parse_top_k(attributes["top_k"]) == 3
    assert parse_top_k(None) == 5
    for bad in ["0", "-1", "three", "1001", "2.5"]:
        with pytest.raises(RequestError, match="top_k must be an integer") as info:
            parse_top_k(bad)
        assert info.value.status_code == 400


def test_raw_image_body_is_one_image() -> None:
    parsed = parse_body(b"\xff\xd8\xff rest", "image/jpeg", LIMITS)
    assert parsed.images == [b"\xff\xd8\xff rest"]
    assert parsed.batch is False


def test_json_single_and_batch_bodies(chelsea_jpeg: bytes) -> None:
    b64 = base64.b64encode(chelsea_jpeg).decode()
    single = parse_body(json.dumps({"image": b64}), "application/json", LIMITS)
    assert single.images == [chelsea_jpeg]
    assert single.batch is False
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))  # `base64` CLI output
    urlsafe = base64.urlsafe_b64encode(chelsea_jpeg).decode().rstrip("=")
    data_uri = "data:image/jpeg;base64," + b64
    body = json.dumps({"instances": [wrapped, {"image": urlsafe}, data_uri]}).encode()
    batch = parse_body(body, "application/json", LIMITS)
    assert batch.images == [chelsea_jpeg] * 3
    assert batch.batch is True


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        pytest.param(b"", 400, "empty request body", id="empty"),
        pytest.param(b"{not json", 400, "not valid JSON", id="bad-json"),
        pytest.param(b"\xff\xfe\x00", 400, "not valid JSON", id="binary-json"),
        pytest.param(b"[" * 100_000, 400, "not valid JSON", id="deep-json"),
        pytest.param(b'"just a string"', 400, "exactly one key", id="not-object"),
        pytest.param(b'{"img": "AAAA"}', 400, "exactly one key", id="typo-key"),
        pytest.param(b'{"image": "AA", "instances": []}', 400, "exactly one key", id="both"),
        pytest.param(b'{"image": 12}', 400, "must be a base64 string", id="number"),
        pytest.param(b'{"image": "!!!not base64!!!"}', 400, "not valid base64", id="bad-b64"),
        pytest.param(b'{"image": "\\u00e9t\\u00e9"}', 400, "non-ASCII", id="non-ascii"),
        pytest.param(b'{"image": ""}', 400, "is empty", id="empty-b64"),
        pytest.param(b'{"instances": []}', 400, "non-empty list", id="no-instances"),
        pytest.param(b'{"instances": "AAAA"}', 400, "non-empty list", id="instances-str"),
        pytest.param(
            json.dumps({"instances": ["AAAA"] * 33}).encode(), 413, "limit is 32", id="too-many"
        ),
    ],
)
def test_bad_json_bodies(body: bytes, status: int, match: str) -> None:
    with pytest.raises(RequestError, match=match) as info:
        parse_body(body, "application/json", LIMITS)
    assert info.value.status_code == status


def test_body_over_the_limit_is_413() -> None:
    limits = RequestLimits(max_body_bytes=1000)
    with pytest.raises(RequestError, match="limit is 1,000 bytes") as info:
        parse_body(b"x" * 1001, "image/png", limits)
    assert info.value.status_code == 413


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_allowed_formats_are_recognised(chelsea_image: Image.Image, fmt: str) -> None:
    name, width, height = check_image_header(encode(chelsea_image, fmt), LIMITS)
    assert (name, width, height) == (fmt, 451, 300)


def test_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = png_header_only(50_000, 50_000)  # 2.5 gigapixels in ~100 bytes
    assert len(bomb) < 200
    with pytest.raises(RequestError, match="2500000000 pixels") as info:
        check_image_header(bomb, LIMITS)
    assert info.value.status_code == 413
    # Below Pillow's own guard, our (lower) limit answers, with the dimensions.
    with pytest.raises(RequestError, match=r"9000x9000 = 81,000,000 pixels") as info:
        check_image_header(png_header_only(9000, 9000), LIMITS)
    assert info.value.status_code == 413


def test_absurd_aspect_ratio_is_refused() -> None:
    with pytest.raises(RequestError, match="aspect ratio") as info:
        check_image_header(png_header_only(100_000, 1), LIMITS)
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    ("data", "match"),
    [
        pytest.param(b"%!PS-Adobe-3.0 EPSF-3.0\n", "not an image", id="eps-runs-ghostscript"),
        pytest.param(b"hello world, not an image", "not an image", id="text"),
        pytest.param(b"\xff\xd8\xff", "not an image|corrupt", id="jpeg-magic-only"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00", "not an image|corrupt", id="png-magic-only"),
    ],
)
def test_non_images_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(RequestError, match=match) as info:
        check_image_header(data, LIMITS)
    assert info.value.status_code == 400


def test_response_encoding() -> None:
    rows = [[{"label": "tabby", "index": 281, "probability": 0.5}]]
    assert json.loads(encode_predictions(rows, batch=False)) == {"predictions": rows[0]}
    assert json.loads(encode_predictions(rows * 2, batch=True)) == {"predictions": rows * 2}
    assert json.loads(encode_error(415, "nope")) == {
        "error": "Unsupported Media Type",
        "status": 415,
        "reason": "nope",
    }
