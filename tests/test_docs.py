"""The documentation's code runs: python blocks execute, YAML blocks validate, examples work."""

from __future__ import annotations

import py_compile
import re
import runpy
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from breedclf.config import ExperimentConfig, load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
# Pages whose python blocks are self-contained and fast (the others need a trained model or data).
EXECUTED_PAGES = ["datasets.md", "dogimages.md", "configuration.md"]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(page: str, language: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return [body for lang, body in FENCE.findall(text) if lang == language]


def yaml_blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for i, body in enumerate(blocks(page.name, "yaml")):
            found.append((page.name, i, body))
    return found


@pytest.mark.parametrize("page", EXECUTED_PAGES)
def test_python_blocks_run(page: str, tmp_path: Path) -> None:
    code = blocks(page, "python")
    assert code, f"{page} has no python blocks"
    for i, body in enumerate(code):
        namespace = {"tmp": str(tmp_path / str(i)), "Path": Path, "Image": Image}
        exec(compile(body, f"{page}[python {i}]", "exec"), namespace)


def _readme_python() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [body for lang, body in FENCE.findall(text) if lang == "python"]


@pytest.mark.slow
def test_readme_python_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (code,) = _readme_python()
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md[python]", "exec"), {})
    assert (tmp_path / "runs" / "quick" / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_getting_started_python_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, textures_root: Path
) -> None:
    """The page's blocks run in order in one namespace, given the files it names."""
    from breedclf.config import dump_config, override
    from breedclf.demo import demo_config

    monkeypatch.chdir(tmp_path)
    config = override(
        demo_config("runs/experiment"),
        {"data.root": str(textures_root), "data.image_size": 32, "model.weights": None},
    )
    dump_config(config, "exp.yaml")
    Image.open(next((textures_root / "test").rglob("*.png"))).save("img.jpg")
    namespace: dict[str, object] = {}
    code = blocks("getting-started.md", "python")
    assert len(code) >= 2
    for i, body in enumerate(code):
        exec(compile(body, f"getting-started.md[python {i}]", "exec"), namespace)
    assert (tmp_path / "runs" / "experiment" / "model" / "breedclf.json").is_file()


def test_every_page_exists_and_has_yaml() -> None:
    names = {p.name for p in DOCS.glob("*.md")}
    assert {"getting-started.md", "configuration.md", "datasets.md", "dogimages.md"} <= names
    assert len(yaml_blocks()) >= 3


@pytest.mark.parametrize(("page", "index", "body"), yaml_blocks())
def test_yaml_blocks_validate(page: str, index: int, body: str) -> None:
    data = yaml.safe_load(body)
    validate_config(ExperimentConfig, data, f"{page} yaml block {index}")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("configs/*.yaml")), ids=lambda p: p.name)
def test_example_configs_load(path: Path) -> None:
    config = load_config(path)
    assert config.data.dataset == "dogimages"
    assert config.model.name == "resnet50"


def test_full_example_is_the_default_config() -> None:
    (full,) = [body for body in blocks("configuration.md", "yaml") if "channels_last" in body]
    data = yaml.safe_load(full)
    data["data"]["root"] = None
    assert validate_config(ExperimentConfig, data) == ExperimentConfig()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_examples_compile(path: Path) -> None:
    py_compile.compile(str(path), doraise=True)
    assert "breedclf." not in "".join(
        line for line in path.read_text().splitlines() if "._" in line and "import" in line
    ), "examples use only the public API"


def test_custom_dataset_example_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["custom_dataset.py", str(out)])
    runpy.run_path(str(EXAMPLES / "custom_dataset.py"), run_name="__main__")
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "metrics.jsonl").is_file()
    meta = (out / "model" / "breedclf.json").read_text()
    assert '"GRAVEL"' in meta
