"""No request takes the server down: a bounded fuzz and a bounded load at concurrency 32."""

from __future__ import annotations

import base64
import io
import json
import random
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from tests.serving.conftest import Reply, ServerProcess, encode, ping, send, start_server
from tests.serving.test_protocol import png_header_only

CONCURRENCY = 32
LOAD_REQUESTS = 192
REQUEST_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def server(
    small_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("robust") / "serve.log"
    process = start_server(small_model_dir, log, request_timeout_s=REQUEST_TIMEOUT_S)
    try:
        yield process
    finally:
        process.stop()


def _malformed_http_requests(chelsea_jpeg: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """(name, headers, body): requests that are well-formed HTTP but bad for the endpoint."""
    rng = random.Random(0)
    jpeg, b64 = {"Content-Type": "image/jpeg"}, base64.b64encode(chelsea_jpeg).decode()
    json_type = {"Content-Type": "application/json"}
    cases = [
        ("empty", jpeg, b""),
        ("random-bytes", jpeg, rng.randbytes(5000)),
        ("truncated-jpeg", jpeg, chelsea_jpeg[:2000]),
        ("jpeg-header-only", jpeg, chelsea_jpeg[:20]),
        ("png-bomb", {"Content-Type": "image/png"}, png_header_only(100_000, 100_000)),
        ("png-sliver", {"Content-Type": "image/png"}, png_header_only(1, 30_000)),
        ("png-zero-size", {"Content-Type": "image/png"}, png_header_only(0, 0)),
        ("text", {"Content-Type": "text/plain"}, b"hello"),
        ("no-content-type", {}, chelsea_jpeg),
        ("form", {"Content-Type": "multipart/form-data; boundary=x"}, b"--x--"),
        ("bad-base64", json_type, b'{"image": "%%%%"}'),
        (
            "base64-of-text",
            json_type,
            json.dumps({"image": base64.b64encode(b"hi").decode()}).encode(),
        ),
        ("bad-json", json_type, b'{"instances": [}'),
        ("json-array", json_type, json.dumps([b64]).encode()),
        ("json-nested", json_type, b'{"image": ' * 50_000),
        ("json-latin1", json_type, '{"image": "é"}'.encode("latin-1")),
        ("too-many-instances", json_type, json.dumps({"instances": [b64[:8]] * 100}).encode()),
        ("instance-number", json_type, b'{"instances": [1, 2]}'),
        ("accept-xml", {**jpeg, "Accept": "application/xml"}, chelsea_jpeg),
        (
            "top-k-negative",
            {**jpeg, "X-Amzn-SageMaker-Custom-Attributes": "top_k=-5"},
            chelsea_jpeg,
        ),
        (
            "top-k-huge",
            {**jpeg, "X-Amzn-SageMaker-Custom-Attributes": "top_k=10000000"},
            chelsea_jpeg,
        ),
        ("over-6-mib", jpeg, chelsea_jpeg + bytes(6 * 1024 * 1024)),
    ]
    # Seeded corruptions of every allowed format: each must decode (200) or be refused (400).
    small = Image.open(io.BytesIO(chelsea_jpeg)).convert("RGB").resize((120, 80))
    originals = {"jpeg": chelsea_jpeg}
    for fmt in ("PNG", "WEBP", "GIF", "BMP", "TIFF"):
        originals[fmt.lower()] = encode(small, fmt)
    for fmt, original in originals.items():
        for i in range(4 if fmt == "jpeg" else 2):
            corrupt = bytearray(original)
            for _ in range(rng.choice([1, 5, 20])):
                corrupt[rng.randrange(8, len(corrupt))] = rng.randrange(256)
            cases.append(
                (f"bitflip-{fmt}-{i}", {"Content-Type": "application/x-image"}, bytes(corrupt))
            )
    return cases


def _raw(url: str, payload: bytes, *, pause_s: float = 0.0, tail: bytes = b"") -> bytes:
    """Send raw bytes (optionally more after a pause); return what arrives until the server
    closes the connection (all raw requests ask for ``Connection: close``)."""
    host, port = url.removeprefix("http://").split(":")
    data = b""
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        try:
            sock.sendall(payload)
            if pause_s:
                time.sleep(pause_s)
                sock.sendall(tail)
            while chunk := sock.recv(65536):
                data += chunk
        except OSError:  # reset or timed out: the answer is what arrived
            pass
    return data


def _status(raw: bytes) -> int | None:
    if not raw.startswith(b"HTTP/1.1 "):
        return None
    return int(raw[9:12])


def _load(url: str, bodies: list[tuple[dict[str, str], bytes]]) -> list[Reply]:
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        return list(
            pool.map(lambda hb: send(f"{url}/invocations", body=hb[1], headers=hb[0]), bodies)
        )


def test_fuzz_and_load_never_5xx_and_memory_stays_flat(
    server: ServerProcess, chelsea_jpeg: bytes, coffee_image: Image.Image
) -> None:
    valid = [
        ({"Content-Type": "image/jpeg"}, chelsea_jpeg),
        ({"Content-Type": "image/png"}, encode(coffee_image, "PNG")),
        (
            {"Content-Type": "application/json"},
            json.dumps({"image": base64.b64encode(chelsea_jpeg).decode()}).encode(),
        ),
    ]
    bodies = [valid[i % len(valid)] for i in range(LOAD_REQUESTS)]

    warmup = _load(server.url, bodies)
    assert {r.status for r in warmup} == {200}
    rss_before = server.rss_bytes()

    # 1. Bad requests that are valid HTTP: a 4xx with a JSON reason (bit-flips may decode: 200).
    outcomes: dict[str, int] = {}
    for name, headers, body in _malformed_http_requests(chelsea_jpeg):
        reply = send(f"{server.url}/invocations", body=body, headers=headers)
        outcomes[name] = reply.status
        if name.startswith("bitflip"):  # a corrupt file may still decode
            assert reply.status in {200, 400, 413}, (name, reply.body)
        else:
            assert 400 <= reply.status < 500, (name, reply.status, reply.body[:300])
            assert "reason" in reply.json(), name
    assert len(outcomes) >= 20

    # 2. Bad HTTP: the server answers 4xx or closes the connection; it never answers 5xx.
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: image/jpeg\r\n"
    )
    raw_cases = {
        "garbage-line": _raw(server.url, b"\x16\x03\x01\x00\xa5 TLS hello?\r\n\r\n"),
        "bad-content-length": _raw(server.url, head + b"Content-Length: -1\r\n\r\n"),
        "huge-header": _raw(server.url, head + b"X-Big: " + b"a" * 200_000 + b"\r\n\r\n"),
        "short-body": _raw(
            server.url, head + b"Content-Length: 50000\r\n\r\n" + chelsea_jpeg[:100]
        ),
        "slow-body": _raw(
            server.url,
            head + f"Content-Length: {len(chelsea_jpeg)}\r\n\r\n".encode() + chelsea_jpeg[:100],
            pause_s=REQUEST_TIMEOUT_S + 1,
            tail=chelsea_jpeg[100:],
        ),
        "chunked-ok": _raw(
            server.url,
            head
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + f"{len(chelsea_jpeg):x}\r\n".encode()
            + chelsea_jpeg
            + b"\r\n0\r\n\r\n",
        ),
    }
    for name, raw in raw_cases.items():
        status = _status(raw)
        assert status is None or status < 500, (name, raw[:300])
    assert _status(raw_cases["slow-body"]) == 408
    assert _status(raw_cases["short-body"]) == 408
    assert _status(raw_cases["chunked-ok"]) == 200
    assert _status(raw_cases["garbage-line"]) in {None, 400}

    # 3. Load at concurrency 32 after the fuzz: every request answered, none with a 5xx.
    replies = _load(server.url, bodies)
    assert [r.status for r in replies] == [200] * len(bodies)
    assert max(int(r.headers["x-breedclf-batch-size"]) for r in replies) > 1

    assert ping(server.url)
    assert server.process.poll() is None
    rss_after = server.rss_bytes()
    growth = (rss_after - rss_before) / rss_before
    assert growth < 0.10, (
        f"RSS grew {growth:.1%}: {rss_before / 2**20:.0f} → {rss_after / 2**20:.0f} MiB"
    )
