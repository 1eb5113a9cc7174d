from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from typer.testing import CliRunner

from breedclf import save_model
from breedclf.cli import app
from breedclf.config import load_config
from breedclf.models import create_model

runner = CliRunner()


def test_data_check_exit_code_and_report(tmp_path: Path, textures_root: Path) -> None:
    ok = runner.invoke(app, ["data", "check", str(textures_root)])
    assert ok.exit_code == 0, ok.output
    assert "checked 270 images" in ok.output
    assert "all images decode" in ok.output
    bad = tmp_path / "cls"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert "1 unreadable images" in result.output
    assert "broken.jpg" in result.output


def test_config_command_writes_a_loadable_default(tmp_path: Path) -> None:
    out = tmp_path / "exp.yaml"
    result = runner.invoke(app, ["config", "-o", str(out)])
    assert result.exit_code == 0
    assert load_config(out).model.name == "efficientnet_lite0"


def test_predict_prints_labelled_predictions(tmp_path: Path, textures_root: Path) -> None:
    model = create_model(
        "efficientnet_lite0",
        num_classes=3,
        weights="DEFAULT",
        generator=torch.Generator().manual_seed(0),
    )
    save_model(model, ["brick", "grass", "gravel"], tmp_path / "m")
    image = textures_root / "test" / "grass" / "grass_test_000.png"
    result = runner.invoke(
        app, ["predict", str(tmp_path / "m"), str(image), "--top-k", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip())
    assert record["image"] == str(image)
    assert [p["label"] for p in record["predictions"]] != []
    assert len(record["predictions"]) == 2
    assert {p["label"] for p in record["predictions"]} <= {"brick", "grass", "gravel"}


def test_library_errors_become_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  epoch: 2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "breedclf.cli", "train", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "did you mean 'epochs'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_models_command_lists_with_wildcard() -> None:
    result = runner.invoke(app, ["models", "resnet*"])
    assert result.exit_code == 0
    assert result.output.split() == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]


def test_config_command_never_overwrites_an_edited_file(tmp_path: Path) -> None:
    out = tmp_path / "exp.yaml"
    out.write_text("training:\n  epochs: 3\n")
    result = runner.invoke(app, ["config", "-o", str(out)])
    assert result.exit_code == 2
    assert "--force" in result.output
    assert out.read_text() == "training:\n  epochs: 3\n"
    forced = runner.invoke(app, ["config", "-o", str(out), "--force"])
    assert forced.exit_code == 0
    assert load_config(out).training.epochs == 10
