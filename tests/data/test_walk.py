"""One set of tree rules for training's sample discovery and ``data check``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from breedclf.cli import app
from breedclf.config import DataConfig
from breedclf.data import check_images, create_dataset
from tests.conftest import jpeg_bytes


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return jpeg_bytes(Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)))


@pytest.fixture
def linked_tree(tmp_path: Path) -> dict[str, Path]:
    """``data/train/<class>`` are symlinks into ``store/``; one holds a truncated JPEG, a nested
    symlinked folder and a symlink back to itself; ``data/__MACOSX`` holds a decodable copy."""
    store = tmp_path / "store"
    for c, name in enumerate(("brick", "grass")):
        (store / name).mkdir(parents=True)
        for i in range(3):
            (store / name / f"{name}_{i}.jpg").write_bytes(_jpeg(10 * c + i))
    (store / "extra").mkdir()
    (store / "extra" / "extra_0.jpg").write_bytes(_jpeg(50))
    full = _jpeg(60)
    (store / "grass" / "grass_truncated.jpg").write_bytes(full[: len(full) // 2])
    (store / "grass" / "more").symlink_to(store / "extra", target_is_directory=True)
    (store / "grass" / "again").symlink_to(store / "grass", target_is_directory=True)
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    for name in ("brick", "grass"):
        (data / "train" / name).symlink_to(store / name, target_is_directory=True)
    mac = data / "__MACOSX" / "train" / "grass"
    mac.mkdir(parents=True)
    (mac / "grass_0.jpg").write_bytes(_jpeg(70))
    (mac / "._grass_0.jpg").write_bytes(b"\0\5\26\7 apple double")
    grass = data / "train" / "grass"
    return {
        "data": data,
        "truncated": grass / "grass_truncated.jpg",
        "nested": grass / "more" / "extra_0.jpg",
        "loop": grass / "again",
        "macosx": data / "__MACOSX",
    }


def test_data_check_follows_symlinks_and_skips_macosx(linked_tree: dict[str, Path]) -> None:
    report = check_images(linked_tree["data"], workers=1)
    assert report.checked == 3 + 4 + 1  # brick, grass (with the truncated one), more/extra_0
    assert [path for path, _ in report.bad] == [linked_tree["truncated"]]
    assert "truncated" in report.bad[0][1]
    assert report.hidden_skipped == [linked_tree["macosx"]]
    assert report.symlink_loops == [linked_tree["loop"]]
    assert not report.ok


def test_training_reads_exactly_the_images_data_check_decodes(
    linked_tree: dict[str, Path],
) -> None:
    splits = create_dataset(DataConfig(root=linked_tree["data"])).load_splits()
    samples = splits.train + splits.valid + splits.test
    report = check_images(linked_tree["data"], workers=1)
    reachable = set(_reachable_images(linked_tree["data"]))
    assert {s.path for s in samples} == reachable
    assert len(samples) == report.checked
    assert linked_tree["truncated"] in reachable
    assert linked_tree["nested"] in reachable
    assert not any("__MACOSX" in s.path.parts for s in samples)
    assert not any("again" in s.path.parts for s in samples)


def _reachable_images(root: Path) -> list[Path]:
    # Independent oracle: every image file reachable by following links, cycles cut by hand.
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "__")) and d != "again"]
        found += [Path(dirpath) / f for f in filenames if f.endswith(".jpg")]
    return found


def test_data_check_command_reports_the_truncated_file_behind_a_link(
    linked_tree: dict[str, Path],
) -> None:
    result = CliRunner().invoke(app, ["data", "check", str(linked_tree["data"])])
    assert result.exit_code == 1, result.output
    assert "checked 8 images" in result.output
    assert f"1 unreadable images (training skips them):\n  {linked_tree['truncated']}:" in (
        result.output
    )
    assert f"did not enter 1 links back to a parent folder:\n  {linked_tree['loop']}\n" in (
        result.output
    )
