"""The Predictor client against the real server, and against servers that misbehave."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from breedclf.serving import (
    EndpointConnectionError,
    EndpointError,
    EndpointRequestError,
    EndpointServerError,
    Predictor,
)
from tests.serving.conftest import CAT_LABELS, ServerProcess


@pytest.fixture
def cat_file(tmp_path: Path, chelsea_jpeg: bytes) -> Path:
    path = tmp_path / "chelsea.jpg"
    path.write_bytes(chelsea_jpeg)
    return path


def test_predict_from_a_path_bytes_and_a_pil_image(
    imagenet_server: ServerProcess, cat_file: Path, chelsea_image: Image.Image
) -> None:
    predictor = Predictor(imagenet_server.url)
    for image in (cat_file, str(cat_file), cat_file.read_bytes(), chelsea_image):
        predictions = predictor.predict(image, top_k=3)
        assert len(predictions) == 3
        assert predictions[0]["label"] in CAT_LABELS
        assert set(predictions[0]) == {"label", "index", "probability"}


def test_predict_batch(imagenet_server: ServerProcess, cat_file: Path, coffee_jpeg: bytes) -> None:
    cat, coffee = Predictor(imagenet_server.url).predict_batch([cat_file, coffee_jpeg], top_k=2)
    assert cat[0]["label"] in CAT_LABELS
    assert coffee[0]["label"] == "espresso"
    assert len(cat) == len(coffee) == 2
    assert Predictor(imagenet_server.url).predict_batch([]) == []


@pytest.mark.parametrize("suffix", ["", "/", "/invocations", "/invocations/"])
def test_url_forms(imagenet_server: ServerProcess, suffix: str) -> None:
    predictor = Predictor(imagenet_server.url + suffix)
    assert predictor.url == f"{imagenet_server.url}/invocations"
    assert predictor.ping()


def test_refused_request_raises_with_the_servers_reason(imagenet_server: ServerProcess) -> None:
    with pytest.raises(EndpointRequestError, match="HTTP 400: body is not an image") as info:
        Predictor(imagenet_server.url).predict(b"this is not an image")
    assert info.value.status_code == 400
    assert "not an image" in info.value.reason


def test_missing_file_is_a_file_not_found_error(
    imagenet_server: ServerProcess, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match=r"no-such\.jpg"):
        Predictor(imagenet_server.url).predict(tmp_path / "no-such.jpg")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_endpoint_is_a_connection_error() -> None:
    predictor = Predictor(f"http://127.0.0.1:{_closed_port()}", timeout=5)
    with pytest.raises(EndpointConnectionError, match="cannot reach the endpoint") as info:
        predictor.predict(b"\xff\xd8\xff")
    assert info.value.status_code is None
    assert not predictor.ping()


def test_silent_endpoint_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        port = listener.getsockname()[1]
        predictor = Predictor(f"http://127.0.0.1:{port}", timeout=0.5)
        with pytest.raises(EndpointConnectionError, match=r"did not answer within 0\.5 s"):
            predictor.predict(b"\xff\xd8\xff")


@pytest.mark.parametrize("url", ["ftp://example.com", "file:///etc/passwd", "127.0.0.1:8080"])
def test_only_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(EndpointError, match="must start with http"):
        Predictor(url)


class _Canned(BaseHTTPRequestHandler):
    status = 503
    body = b'{"error": "Service Unavailable", "status": 503, "reason": "server busy"}'

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def canned_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """A stdlib HTTP server on 127.0.0.1 answering every POST with one canned response."""
    status, body = request.param
    handler = type("Handler", (_Canned,), {"status": status, "body": body})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize(
    ("canned_server", "error", "match"),
    [
        pytest.param(
            (503, _Canned.body), EndpointServerError, "HTTP 503: server busy", id="503-json"
        ),
        pytest.param((500, b"Traceback..."), EndpointServerError, "HTTP 500: Traceback", id="500"),
        pytest.param((200, b"<html>"), EndpointServerError, "not a predictions JSON", id="html"),
        pytest.param((413, b""), EndpointRequestError, "HTTP 413", id="413-empty"),
    ],
    indirect=["canned_server"],
)
def test_server_failures_become_clear_exceptions(
    canned_server: str, error: type[EndpointError], match: str
) -> None:
    with pytest.raises(error, match=match):
        Predictor(canned_server, timeout=10).predict(b"\xff\xd8\xff")
