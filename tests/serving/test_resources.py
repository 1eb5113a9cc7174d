"""What the server may hold at once (requests, body bytes, pixels) and the threads it runs on."""

from __future__ import annotations

import inspect
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from breedclf.data._images import DEFAULT_MAX_PIXELS
from breedclf.serving import RequestError, RequestLimits, ServingConfig
from breedclf.serving._commands import serve
from breedclf.serving._protocol import check_image_header
from tests.serving.conftest import ServerProcess, send, start_server
from tests.serving.test_protocol import png_header_only

MAX_BODY = 1_000_000
BUDGET = 2 * 1024 * 1024  # room for two bodies of the largest size, not three


def test_serving_and_training_share_one_pixel_limit() -> None:
    assert ServingConfig().max_pixels == RequestLimits().max_pixels == DEFAULT_MAX_PIXELS
    # 56 Mpx: trains (under 80 Mpx), so it must also be served.
    assert check_image_header(png_header_only(8000, 7000), RequestLimits())[1:] == (8000, 7000)
    with pytest.raises(RequestError, match="the limit is 80,000,000") as info:
        check_image_header(png_header_only(9000, 9000), RequestLimits())
    assert info.value.status_code == 413


def test_a_limit_above_pillows_own_guard_is_honoured() -> None:
    # 200 Mpx is past Pillow's DecompressionBombError (2 x 89 Mpx); the caller's limit rules.
    limits = RequestLimits(max_pixels=250_000_000)
    assert check_image_header(png_header_only(20_000, 10_000), limits)[1:] == (20_000, 10_000)


def test_serve_options_default_to_the_serving_config() -> None:
    fields = set(ServingConfig.model_fields)
    mirrored = {
        name: parameter.default
        for name, parameter in inspect.signature(serve).parameters.items()
        if name in fields
    }
    assert len(mirrored) >= 9
    # None means "not given": ServingConfig's default applies, written there only.
    assert mirrored == dict.fromkeys(mirrored)


def test_an_invalid_budget_names_both_fields() -> None:
    with pytest.raises(ValueError, match=r"max_buffered_bytes .* below max_body_bytes"):
        ServingConfig(max_body_bytes=2_000_000, max_buffered_bytes=1_000_000)


@pytest.fixture(scope="module")
def bounded_server(
    small_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("bounded") / "serve.log"
    server = start_server(
        small_model_dir,
        log,
        max_body_bytes=MAX_BODY,
        max_buffered_bytes=BUDGET,
        max_concurrency=3,
        request_timeout_s=20.0,
    )
    try:
        yield server
    finally:
        server.stop()


def _open_upload(url: str, declared: int, first: bytes = b"") -> socket.socket:
    """Start a POST that declares ``declared`` body bytes and sends only ``first``."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=20)
    sock.sendall(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode()
        + first
    )
    return sock


def _response(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep:
            continue
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        if len(body) >= int(headers.get("content-length", "0")):
            return int(lines[0].split()[1]), headers, json.loads(body)
    raise AssertionError(f"incomplete response: {data[:300]!r}")


def test_bodies_over_the_byte_budget_get_a_json_503_at_once(
    bounded_server: ServerProcess, chelsea_jpeg: bytes
) -> None:
    url = bounded_server.url
    held = [_open_upload(url, MAX_BODY, b"\xff\xd8\xff") for _ in range(2)]
    try:
        ping = send(f"{url}/ping", method="GET")  # the held uploads have been admitted
        assert ping.status == 200
        third = _open_upload(url, 200_000)
        with third:
            status, headers, error = _response(third)
        assert status == 503
        assert headers["content-type"] == "application/json"
        assert headers["retry-after"] == "1"
        assert error["status"] == 503
        assert "request bodies in progress hold 1.9 MiB of the 2 MiB allowed" in str(
            error["reason"]
        )
    finally:
        for sock in held:
            sock.close()
    # The budget is given back when requests end, however they end.
    reply = send(f"{url}/invocations", body=chelsea_jpeg, headers={"Content-Type": "image/jpeg"})
    assert reply.status == 200, reply.body


def test_requests_over_the_concurrency_limit_get_a_json_503(
    bounded_server: ServerProcess, chelsea_jpeg: bytes
) -> None:
    url = bounded_server.url
    held = [_open_upload(url, len(chelsea_jpeg), chelsea_jpeg[:100]) for _ in range(3)]
    try:
        assert send(f"{url}/ping", method="GET").status == 200  # health checks still answer
        reply = send(
            f"{url}/invocations", body=chelsea_jpeg, headers={"Content-Type": "image/jpeg"}
        )
        assert reply.status == 503
        assert reply.headers["content-type"] == "application/json"
        assert "3 requests in progress, the limit is 3" in str(reply.json()["reason"])
        for sock in held:
            sock.sendall(chelsea_jpeg[100:])
        for sock in held:
            status, _, body = _response(sock)
            assert status == 200, body
    finally:
        for sock in held:
            sock.close()


# A fresh interpreter: torch's thread settings are process-wide. The forward thread starts
# after a request went through a decode thread (no warm-up), the order that used to leave the
# forward pass on one thread; then a thread started afterwards must see torch's default.
THREADS_SCRIPT = r"""
import http.client, json, sys, threading, time
import torch, uvicorn
from breedclf.serving import ServingConfig, create_app
from breedclf.serving._commands import _bind_socket

default = torch.get_num_threads()
app = create_app(sys.argv[1], ServingConfig(warmup=False, decode_threads=2))
sock = _bind_socket("127.0.0.1", 0)
server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
thread.start()
while not server.started:
    time.sleep(0.05)
connection = http.client.HTTPConnection("127.0.0.1", sock.getsockname()[1], timeout=60)
connection.request("POST", "/invocations", body=open(sys.argv[2], "rb").read(),
                   headers={"Content-Type": "image/jpeg"})
assert connection.getresponse().read()
connection.request("GET", "/info")
serving = json.loads(connection.getresponse().read())["serving"]
later = []
probe = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
probe.start()
probe.join()
server.should_exit = True
thread.join()
print(json.dumps({"default": default, "later_thread": later[0], **serving}))
"""


def test_decode_threads_leave_the_forward_pass_and_later_threads_their_threads(
    small_model_dir: Path, tmp_path: Path, chelsea_jpeg: bytes
) -> None:
    (tmp_path / "cat.jpg").write_bytes(chelsea_jpeg)
    result = subprocess.run(
        [sys.executable, "-c", THREADS_SCRIPT, str(small_model_dir), str(tmp_path / "cat.jpg")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["forward_threads"] == seen["default"]
    assert seen["later_thread"] == seen["default"]
    assert seen["threads_per_decode"] == 1
    assert seen["decode_threads"] == 2
