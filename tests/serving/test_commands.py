"""The functions behind ``breedclf serve`` and ``breedclf package``."""

from __future__ import annotations

import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from breedclf.errors import ConfigurationError
from breedclf.serving._commands import _bind_socket, package, serve


def test_listening_socket_disables_nagle() -> None:
    # asyncio sets TCP_NODELAY only on IPPROTO_TCP sockets; without it every kept-alive
    # response waited for the client's delayed ACK.
    sock = _bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=f"cannot listen on 127.0.0.1:{port}"):
            _bind_socket("127.0.0.1", port)


def test_invalid_options_name_the_field(small_model_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="request_timeout_s"):
        serve(small_model_dir, request_timeout_s=0)


def test_package_command_writes_the_archive(
    small_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.tar.gz"
    package(small_model_dir, out)
    assert f"wrote {out}" in capsys.readouterr().out
    with tarfile.open(out) as tar:
        assert "code/inference.py" in tar.getnames()


def test_without_the_serve_extra_only_the_server_is_missing(small_model_dir: Path) -> None:
    code = f"""
import sys
sys.modules["starlette"] = None  # as if the serve extra were not installed
sys.modules["uvicorn"] = None
from pathlib import Path
import breedclf.serving as serving
from breedclf.errors import MissingDependencyError
assert serving.Predictor and serving.input_fn and serving.package_model
try:
    serving.create_app
except MissingDependencyError as exc:
    print("APP", exc)
from breedclf.serving._commands import serve
try:
    serve(Path({str(small_model_dir)!r}))
except MissingDependencyError as exc:
    print("SERVE", exc)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert "pip install 'breedclf[serve]'" in lines["APP"]
    assert "breedclf serve needs the optional package 'uvicorn'" in lines["SERVE"]
