"""``breedclf serve`` over real HTTP: the SageMaker contract, content types, errors, batching."""

from __future__ import annotations

import base64
import json
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from breedclf.serving import input_fn, model_fn, output_fn, predict_fn
from tests.serving.conftest import (
    CAT_LABELS,
    ServerProcess,
    assert_same_predictions,
    encode,
    send,
    start_server,
)
from tests.serving.test_protocol import png_header_only

JPEG = {"Content-Type": "image/jpeg"}


def test_ping_is_200_with_an_empty_body(imagenet_server: ServerProcess) -> None:
    reply = send(f"{imagenet_server.url}/ping", method="GET")
    assert (reply.status, reply.body) == (200, b"")


def test_jpeg_gets_labelled_top_5(imagenet_server: ServerProcess, chelsea_jpeg: bytes) -> None:
    reply = send(f"{imagenet_server.url}/invocations", body=chelsea_jpeg, headers=JPEG)
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    predictions = reply.json()["predictions"]
    assert isinstance(predictions, list)
    assert len(predictions) == 5
    assert predictions[0]["label"] in CAT_LABELS
    assert int(reply.headers["x-breedclf-batch-size"]) >= 1


def test_server_and_sagemaker_handler_answer_identically(
    imagenet_server: ServerProcess, imagenet_model_dir: Path, coffee_jpeg: bytes
) -> None:
    reply = send(f"{imagenet_server.url}/invocations", body=coffee_jpeg, headers=JPEG)
    model = model_fn(str(imagenet_model_dir))
    handler_body, _ = output_fn(predict_fn(input_fn(coffee_jpeg, "image/jpeg"), model), "*/*")
    served = reply.json()["predictions"]
    assert_same_predictions(served, json.loads(handler_body)["predictions"])
    assert isinstance(served, list)
    assert served[0]["label"] == "espresso"


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        pytest.param("PNG", "image/png", id="png"),
        pytest.param("WEBP", "image/webp", id="webp"),
        pytest.param("JPEG", "application/x-image", id="x-image"),
        pytest.param("PNG", "application/octet-stream", id="octet-stream-sniffed"),
        pytest.param("PNG", "image/jpeg", id="mislabelled-png-sniffed"),
    ],
)
def test_content_types(
    imagenet_server: ServerProcess, chelsea_image: Image.Image, fmt: str, content_type: str
) -> None:
    body = encode(chelsea_image, fmt)
    reply = send(
        f"{imagenet_server.url}/invocations", body=body, headers={"Content-Type": content_type}
    )
    assert reply.status == 200, reply.body
    predictions = reply.json()["predictions"]
    assert isinstance(predictions, list)
    assert predictions[0]["label"] in CAT_LABELS


def test_json_base64_single_and_batch(
    imagenet_server: ServerProcess, chelsea_jpeg: bytes, coffee_jpeg: bytes
) -> None:
    url = f"{imagenet_server.url}/invocations"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    b64 = [base64.b64encode(x).decode() for x in (chelsea_jpeg, coffee_jpeg)]
    single = send(url, body=json.dumps({"image": b64[1]}).encode(), headers=headers)
    batch = send(url, body=json.dumps({"instances": b64}).encode(), headers=headers)
    assert (single.status, batch.status) == (200, 200)
    predictions = batch.json()["predictions"]
    assert isinstance(predictions, list)
    cat, coffee = predictions
    assert cat[0]["label"] in CAT_LABELS
    assert_same_predictions(single.json()["predictions"], coffee)


@pytest.mark.parametrize(
    ("query", "headers", "expected"),
    [
        pytest.param("?top_k=2", {}, 2, id="query"),
        pytest.param("", {"X-Amzn-SageMaker-Custom-Attributes": "top_k=3"}, 3, id="custom-attr"),
        pytest.param("?top_k=1", {"X-Amzn-SageMaker-Custom-Attributes": "top_k=3"}, 1, id="both"),
        pytest.param("", {}, 5, id="default"),
    ],
)
def test_top_k(
    imagenet_server: ServerProcess,
    chelsea_jpeg: bytes,
    query: str,
    headers: dict[str, str],
    expected: int,
) -> None:
    reply = send(
        f"{imagenet_server.url}/invocations{query}",
        body=chelsea_jpeg,
        headers={**JPEG, **headers},
    )
    assert reply.status == 200
    assert len(reply.json()["predictions"]) == expected  # type: ignore[arg-type]


def _cat(jpeg: bytes) -> bytes:
    return jpeg


def _truncated(jpeg: bytes) -> bytes:
    return jpeg[: len(jpeg) // 3]


PNG = {"Content-Type": "image/png"}
JSON = {"Content-Type": "application/json"}
# (headers, body from the cat JPEG, status, reason fragment)
BAD_REQUESTS = [
    pytest.param(JPEG, lambda _: b"", 400, "empty request body", id="empty-body"),
    pytest.param(JPEG, lambda _: b"plain text " * 10, 400, "not an image", id="not-an-image"),
    pytest.param(JPEG, _truncated, 400, "truncated", id="truncated-jpeg"),
    pytest.param(PNG, lambda _: png_header_only(60_000, 60_000), 413, "pixels", id="bomb"),
    pytest.param(PNG, lambda _: png_header_only(9000, 9000), 413, "limit", id="over-pixels"),
    pytest.param(PNG, lambda _: png_header_only(20_000, 2), 400, "aspect", id="absurd-aspect"),
    pytest.param({"Content-Type": "text/plain"}, _cat, 415, "text/plain", id="wrong-type"),
    pytest.param({}, _cat, 415, "missing Content-Type", id="missing-type"),
    pytest.param(JSON, lambda _: b'{"image": "@@@"}', 400, "base64", id="bad-base64"),
    pytest.param(JSON, lambda _: b'{"image": ', 400, "not valid JSON", id="bad-json"),
    pytest.param(JSON, lambda _: b'{"url": "x"}', 400, "one key", id="wrong-json"),
    pytest.param({**JPEG, "Accept": "text/csv"}, _cat, 406, "text/csv", id="accept-csv"),
    pytest.param(
        {**JPEG, "X-Amzn-SageMaker-Custom-Attributes": "top_k=0"},
        _cat,
        400,
        "top_k",
        id="bad-top-k",
    ),
]


@pytest.mark.parametrize(("headers", "make_body", "status", "fragment"), BAD_REQUESTS)
def test_every_bad_request_gets_a_4xx_with_a_json_reason(
    imagenet_server: ServerProcess,
    chelsea_jpeg: bytes,
    headers: dict[str, str],
    make_body: Callable[[bytes], bytes],
    status: int,
    fragment: str,
) -> None:
    body = make_body(chelsea_jpeg)
    reply = send(f"{imagenet_server.url}/invocations", body=body, headers=headers)
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()
    assert error["status"] == status
    assert fragment in str(error["reason"]), error


def test_body_over_6_mib_is_413_with_a_reason(imagenet_server: ServerProcess) -> None:
    body = b"\xff\xd8\xff" + bytes(6 * 1024 * 1024)
    reply = send(f"{imagenet_server.url}/invocations", body=body, headers=JPEG)
    assert reply.status == 413
    assert "6 MiB" in str(reply.json()["reason"])
    huge = send(
        f"{imagenet_server.url}/invocations",
        body=b"",
        headers={**JPEG, "Content-Length": str(10**12)},
    )
    assert huge.status == 413


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/invocations", 405, id="get-invocations"),
        pytest.param("POST", "/ping", 405, id="post-ping"),
        pytest.param("GET", "/nope", 404, id="unknown"),
        pytest.param("GET", "/static/../breedclf.json", 404, id="traversal"),
        pytest.param("GET", "/static/index.html", 404, id="static-index"),
    ],
)
def test_routing_errors_are_json(
    imagenet_server: ServerProcess, method: str, path: str, status: int
) -> None:
    reply = send(f"{imagenet_server.url}{path}", method=method)
    assert reply.status == status
    assert reply.json()["status"] == status


def test_info_and_page(imagenet_server: ServerProcess) -> None:
    info = send(f"{imagenet_server.url}/info", method="GET").json()
    assert info["arch"] == "efficientnet_lite0"
    assert info["num_classes"] == 1000
    page = send(f"{imagenet_server.url}/", method="GET")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert b'<input id="file" type="file"' in page.body
    script = send(f"{imagenet_server.url}/static/app.js", method="GET")
    assert script.status == 200
    assert b"invocations?top_k=" in script.body


def test_concurrent_requests_share_forward_passes_without_changing_results(
    imagenet_server: ServerProcess, chelsea_jpeg: bytes, coffee_jpeg: bytes
) -> None:
    url = f"{imagenet_server.url}/invocations"
    alone = {
        name: send(url, body=data, headers=JPEG).json()["predictions"]
        for name, data in (("cat", chelsea_jpeg), ("coffee", coffee_jpeg))
    }
    jobs = [("cat", chelsea_jpeg), ("coffee", coffee_jpeg)] * 12
    with ThreadPoolExecutor(max_workers=12) as pool:
        replies = list(pool.map(lambda job: send(url, body=job[1], headers=JPEG), jobs))
    assert [r.status for r in replies] == [200] * len(jobs)
    batch_sizes = [int(r.headers["x-breedclf-batch-size"]) for r in replies]
    assert max(batch_sizes) > 1, batch_sizes
    for (name, _), reply in zip(jobs, replies, strict=True):
        assert_same_predictions(reply.json()["predictions"], alone[name])


def test_graceful_shutdown_finishes_in_flight_requests(
    small_model_dir: Path, tmp_path: Path, chelsea_jpeg: bytes
) -> None:
    server = start_server(small_model_dir, tmp_path / "serve.log")
    host, port = server.url.removeprefix("http://").split(":")
    in_flight = []
    try:
        for _ in range(3):
            sock = socket.create_connection((host, int(port)), timeout=60)
            head = (
                f"POST /invocations HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {len(chelsea_jpeg)}\r\n\r\n"
            ).encode()
            sock.sendall(head + chelsea_jpeg[:100])  # the rest arrives after SIGTERM
            in_flight.append(sock)
        time.sleep(0.5)
        server.process.terminate()
        time.sleep(0.5)
        assert server.process.poll() is None, "the server exited with requests in flight"
        for sock in in_flight:
            sock.sendall(chelsea_jpeg[100:])
        for sock in in_flight:
            response = _read_http_response(sock)
            assert response.startswith(b"HTTP/1.1 200"), response[:200]
            assert b'"predictions"' in response
        # uvicorn re-raises the signal once it has shut down cleanly, as a shell expects.
        assert server.process.wait(timeout=60) == -signal.SIGTERM
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5).close()
        assert "Application shutdown complete" in server.log()
    finally:
        for sock in in_flight:
            sock.close()
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def _read_http_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body
