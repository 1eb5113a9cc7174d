"""docs/serving.md works as written: its python and shell examples run against a real server."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from breedclf.serving._commands import serve
from tests.serving.conftest import CAT_LABELS, ServerProcess

PAGE = Path(__file__).resolve().parents[2] / "docs" / "serving.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
DOC_URL = "http://127.0.0.1:8080"


def blocks(language: str) -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    return [body for lang, body in FENCE.findall(text) if lang == language]


@pytest.fixture
def workdir(tmp_path: Path, chelsea_jpeg: bytes, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "dog.jpg").write_bytes(chelsea_jpeg)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_python_examples_run(
    imagenet_server: ServerProcess, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = blocks("python")
    assert code
    for i, body in enumerate(code):
        exec(compile(body.replace(DOC_URL, imagenet_server.url), f"serving.md[{i}]", "exec"), {})
    out = capsys.readouterr().out
    assert any(label in out for label in CAT_LABELS)
    assert "400 body is not an image" in out


def test_curl_examples_run(imagenet_server: ServerProcess, workdir: Path) -> None:
    if shutil.which("curl") is None or shutil.which("base64") is None:
        pytest.skip("curl or base64 is not installed")
    lines = [
        line
        for body in blocks("bash")
        for line in body.splitlines()
        if line.startswith(("curl ", "printf "))
    ]
    assert len(lines) >= 6
    for line in lines:
        command = line.replace(DOC_URL, imagenet_server.url)
        result = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {command} --fail-with-body -sS"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (line, result.stdout, result.stderr)
        if "/ping" in line:
            assert result.stdout.startswith("HTTP/1.1 200")
            continue
        predictions = json.loads(result.stdout)["predictions"]
        first = predictions[0][0] if "instances" in line else predictions[0]
        assert first["label"] in CAT_LABELS, line
        if "top_k=3" in line:
            assert len(predictions) == 3


def test_cli_endpoint_example_runs(imagenet_server: ServerProcess, workdir: Path) -> None:
    (line,) = [
        line
        for body in blocks("bash")
        for line in body.splitlines()
        if line.startswith("breedclf predict --endpoint")
    ]
    args = line.replace(DOC_URL, imagenet_server.url).split()[1:]
    result = subprocess.run(
        [sys.executable, "-m", "breedclf.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert any(label in result.stdout for label in CAT_LABELS)
    assert len(re.findall(r"\(index \d+\)", result.stdout)) == 3


def test_the_options_table_matches_the_command() -> None:
    text = PAGE.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `--([a-z-]+)", text, re.MULTILINE))
    parameters = {
        name.replace("_", "-")
        for name in inspect.signature(serve).parameters
        if name != "model_dir"
    }
    assert documented == parameters


def test_the_options_table_shows_the_serving_config_defaults() -> None:
    from breedclf.serving import ServingConfig

    text = PAGE.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `--([a-z-]+)` \| ([^|]+) \|", text, re.MULTILINE))
    defaults = ServingConfig()
    checked = 0
    for name in ServingConfig.model_fields:
        cell = rows.get(name.replace("_", "-"))
        if cell is None:
            continue
        value = getattr(defaults, name)
        expected = "torch's default" if value is None else f"`{value:.15g}`"
        assert cell.strip() == expected, name
        checked += 1
    assert checked >= 9
