"""``breedclf predict --endpoint`` and the client: light to start, and one bad image is named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.serving.conftest import CAT_LABELS, ServerProcess

# Runs the real command line in a fresh interpreter and reports, on stderr, whether torch was
# imported along the way (a client of a remote endpoint has no use for it: seconds per call).
CLI = """
import sys
from breedclf.cli import main
sys.argv = ["breedclf", *sys.argv[1:]]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
print("TORCH_LOADED", "torch" in sys.modules, "torchvision" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_the_client_imports_neither_torch_nor_torchvision() -> None:
    code = (
        "import sys\n"
        "from breedclf.serving import EndpointError, EndpointRequestError, Predictor\n"
        "Predictor('http://127.0.0.1:9')\n"
        "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"


def test_predict_endpoint_classifies_the_good_images_and_names_the_bad_one(
    imagenet_server: ServerProcess, tmp_path: Path, chelsea_jpeg: bytes, coffee_jpeg: bytes
) -> None:
    (tmp_path / "a.jpg").write_bytes(chelsea_jpeg)
    (tmp_path / "bad.jpg").write_bytes(b"this is a shopping list, not a photo")
    (tmp_path / "c.jpg").write_bytes(coffee_jpeg)
    result = run_cli(
        "predict", "--endpoint", imagenet_server.url, "a.jpg", "bad.jpg", "c.jpg", cwd=tmp_path
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "TORCH_LOADED False False" in result.stderr
    out = result.stdout
    assert out.index("a.jpg:") < out.index("c.jpg:")
    assert "bad.jpg" not in out
    assert any(label in out.split("c.jpg:")[0] for label in CAT_LABELS)
    assert "espresso" in out.split("c.jpg:")[1]
    assert "error: bad.jpg (HTTP 400): body is not an image" in result.stderr
    assert "1 of 3 images could not be classified" in result.stderr


def test_predict_endpoint_json_lines_have_one_line_per_image(
    imagenet_server: ServerProcess, tmp_path: Path, chelsea_jpeg: bytes
) -> None:
    (tmp_path / "a.jpg").write_bytes(chelsea_jpeg)
    result = run_cli(
        "predict",
        "--endpoint",
        imagenet_server.url,
        "--json",
        "--top-k",
        "2",
        "a.jpg",
        "missing.jpg",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    good, missing = (json.loads(line) for line in result.stdout.splitlines())
    assert good["image"] == "a.jpg"
    assert len(good["predictions"]) == 2
    assert missing["image"] == "missing.jpg"
    assert "not found" in missing["error"]
    assert "error: missing.jpg: image file not found" in result.stderr


def test_predict_endpoint_with_good_images_only_exits_0(
    imagenet_server: ServerProcess, tmp_path: Path, chelsea_jpeg: bytes
) -> None:
    (tmp_path / "a.jpg").write_bytes(chelsea_jpeg)
    result = run_cli("predict", "--endpoint", imagenet_server.url, "a.jpg", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "TORCH_LOADED False False" in result.stderr
