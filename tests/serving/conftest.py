"""Real saved models, real photographs, and real server processes for the serving tests."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from breedclf.models import create_model
from breedclf.saved_model import save_model

SERVER_START_TIMEOUT_S = 120.0


def torchserve_context(headers: dict[str, str]) -> object:
    """TorchServe's real request context, as the SageMaker PyTorch container passes it."""
    import warnings

    with warnings.catch_warnings():
        # torchserve 0.12 reads its version file without closing it (a ResourceWarning).
        warnings.simplefilter("ignore", ResourceWarning)
        from ts.context import Context, RequestProcessor  # type: ignore[import-untyped]

    context = Context("model", "/opt/ml/model", {}, 1, None, "0.12.0")
    context.request_processor = [RequestProcessor(headers)]
    return context


def encode(image: Image.Image, fmt: str, **save: object) -> bytes:
    """Encode ``image`` in a Pillow format."""
    buf = io.BytesIO()
    image.save(buf, fmt, **save)
    return buf.getvalue()


@pytest.fixture(scope="session")
def chelsea_image() -> Image.Image:
    """scikit-image's photograph of Chelsea the cat."""
    from skimage import data

    photo = data.chelsea()  # type: ignore[no-untyped-call]
    return Image.fromarray(np.asarray(photo))


@pytest.fixture(scope="session")
def coffee_image() -> Image.Image:
    """scikit-image's photograph of a cup of coffee."""
    from skimage import data

    photo = data.coffee()  # type: ignore[no-untyped-call]
    return Image.fromarray(np.asarray(photo))


@pytest.fixture(scope="session")
def chelsea_jpeg(chelsea_image: Image.Image) -> bytes:
    return encode(chelsea_image, "JPEG", quality=90)


@pytest.fixture(scope="session")
def coffee_jpeg(coffee_image: Image.Image) -> bytes:
    return encode(coffee_image, "JPEG", quality=90)


@pytest.fixture(scope="session")
def imagenet_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EfficientNet-Lite0 with its real ImageNet weights and head, saved with ImageNet labels.

    Its predictions on real photographs are known (Chelsea is a tabby/tiger/Egyptian cat, the
    coffee is an espresso), so a serving path that resized, normalised or labelled differently
    from the saved spec would fail these tests.
    """
    from torchvision.models import ResNet18_Weights

    categories = list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    model = create_model("efficientnet_lite0", num_classes=1000, weights="DEFAULT")
    return save_model(model, categories, tmp_path_factory.mktemp("lite0-imagenet"))


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fast model for load tests: Lite0 ImageNet backbone, a new 3-class head, 96 px input."""
    import torch

    model = create_model(
        "efficientnet_lite0",
        num_classes=3,
        weights="DEFAULT",
        generator=torch.Generator().manual_seed(0),
    )
    model.preprocess = model.preprocess.with_input_size(96)
    return save_model(model, ["brick", "grass", "gravel"], tmp_path_factory.mktemp("lite0-96"))


CAT_LABELS = {"tabby", "tiger cat", "Egyptian cat"}


@dataclass
class ServerProcess:
    """A ``breedclf serve`` process on a free port of 127.0.0.1."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux ``/proc``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("VmRSS not found")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise


def start_server(model_dir: Path, log_path: Path, **options: object) -> ServerProcess:
    """Start ``breedclf.serving._commands.serve`` in a subprocess and wait for ``/ping``."""
    kwargs = {"port": 0, "access_log": False, **options}
    code = (
        "from pathlib import Path\n"
        "from breedclf.serving._commands import serve\n"
        f"serve(Path({str(model_dir)!r}), **{kwargs!r})\n"
    )
    log = log_path.open("wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    log.close()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        if url is None:
            match = re.search(r"at (http://127\.0\.0\.1:\d+)", log_path.read_text(errors="replace"))
            url = match.group(1) if match else None
        if url is not None and ping(url):
            return ServerProcess(process, url, log_path)
        time.sleep(0.2)
    process.kill()
    process.wait(timeout=10)
    raise RuntimeError(f"server did not start in time:\n{log_path.read_text()}")


def ping(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        out = json.loads(self.body)
        assert isinstance(out, dict)
        return out


def send(
    url: str,
    *,
    method: str = "POST",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Reply:
    """One HTTP request, sending exactly ``headers`` (no added Content-Type); never raises
    for 4xx/5xx."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, path or "/", body=body, headers=headers or {})
        response = connection.getresponse()
        headers_out = {k.lower(): v for k, v in response.getheaders()}
        return Reply(response.status, headers_out, response.read())
    finally:
        connection.close()


@pytest.fixture(scope="session")
def imagenet_server(
    imagenet_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """``breedclf serve`` of the ImageNet Lite0 model, shared by the HTTP-level tests."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    server = start_server(imagenet_model_dir, log)
    try:
        yield server
    finally:
        server.stop()


def assert_same_predictions(actual: object, expected: object, *, abs_tol: float = 1e-4) -> None:
    """Same labels and indices in the same order, probabilities equal within ``abs_tol``."""
    assert isinstance(actual, list)
    assert isinstance(expected, list)
    assert [(p["label"], p["index"]) for p in actual] == [
        (p["label"], p["index"]) for p in expected
    ]
    assert [p["probability"] for p in actual] == pytest.approx(
        [p["probability"] for p in expected], abs=abs_tol
    )
