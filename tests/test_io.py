"""Crash-safe writes: usual permissions, whole-directory saves, nothing half-replaced."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from breedclf._io import atomic_directory, atomic_path
from breedclf.errors import CheckpointError
from breedclf.models import create_model
from breedclf.saved_model import load_model, save_model


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_files_get_the_umask_permissions(tmp_path: Path, umask_022: None) -> None:
    with atomic_path(tmp_path / "a.json") as tmp:
        tmp.write_text("{}")
    assert _mode(tmp_path / "a.json") == 0o644  # not mkstemp's 0o600


def test_saved_models_are_readable_by_others(tmp_path: Path, umask_022: None) -> None:
    model = create_model("efficientnet_lite0", num_classes=3, weights=None)
    out = save_model(model, ["a", "b", "c"], tmp_path / "model")
    assert _mode(out) == 0o755
    for name in ("model.safetensors", "breedclf.json"):
        assert _mode(out / name) == 0o644, name


def test_a_failed_save_keeps_the_previous_model_whole(tmp_path: Path) -> None:
    first = create_model("efficientnet_lite0", num_classes=3, weights=None)
    out = save_model(first, ["a", "b", "c"], tmp_path / "model", metrics={"run": 1})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    second = create_model("efficientnet_lite0", num_classes=3, weights=None)
    # Metadata that cannot be written fails after the new weights were produced.
    with pytest.raises(TypeError):
        save_model(second, ["a", "b", "c"], out, metrics={"bad": object()})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert json.loads((out / "breedclf.json").read_text())["metrics"] == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary left behind
    load_model(out)


def test_saving_again_replaces_the_whole_directory(tmp_path: Path) -> None:
    model = create_model("efficientnet_lite0", num_classes=2, weights=None)
    out = save_model(model, ["a", "b"], tmp_path / "model", metrics={"run": 1})
    (out / "stale.txt").write_text("from the first save")
    save_model(model, ["x", "y"], out, metrics={"run": 2})
    assert sorted(p.name for p in out.iterdir()) == ["breedclf.json", "model.safetensors"]
    assert load_model(out).classes == ["x", "y"]


def test_save_refuses_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    model = create_model("efficientnet_lite0", num_classes=2, weights=None)
    with pytest.raises(CheckpointError, match="not a saved breedclf model"):
        save_model(model, ["a", "b"], tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_atomic_directory_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "f").write_text("old")

    def crash_while_writing() -> None:
        with atomic_directory(target) as tmp:
            (tmp / "f").write_text("new")
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        crash_while_writing()
    assert (target / "f").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
