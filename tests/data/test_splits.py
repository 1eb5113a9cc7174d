"""Stable, stratified splits; the split manifest; per-split data roots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from breedclf.config import DataConfig, ExperimentConfig, SplitConfig, validate_config
from breedclf.data import DatasetSplits, Sample, create_dataset, load_manifest, stratified_split
from breedclf.errors import ConfigurationError, DatasetError
from tests.conftest import jpeg_bytes
from tests.data.test_datasets import make_dog_tree


def _image(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return jpeg_bytes(Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)))


def _write_classes(root: Path, counts: dict[str, int]) -> None:
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / name / f"{name}_{i:03d}.jpg").write_bytes(_image(i))


def _assignment(splits: DatasetSplits) -> dict[Path, str]:
    return {s.path: name for name in ("train", "valid", "test") for s in splits.split(name)}


def test_adding_an_image_to_one_class_moves_no_image_of_another(tmp_path: Path) -> None:
    _write_classes(tmp_path, {"a": 24, "b": 25, "c": 26})
    config = DataConfig(root=tmp_path, split=SplitConfig(valid=0.2, test=0.2, seed=1))
    before = _assignment(create_dataset(config).load_splits())
    (tmp_path / "a" / "a_new.jpg").write_bytes(_image(99))
    after = _assignment(create_dataset(config).load_splits())
    for path, split in before.items():
        if path.parent.name != "a":
            assert after[path] == split, f"{path} moved from {split} to {after[path]}"
    moved_in_a = [p for p, s in before.items() if p.parent.name == "a" and after[p] != s]
    assert len(moved_in_a) <= 3


def test_removing_an_image_moves_no_image_of_another_class(tmp_path: Path) -> None:
    _write_classes(tmp_path, {"a": 12, "b": 9})
    config = DataConfig(root=tmp_path, split=SplitConfig(valid=0.25, test=0.25))
    before = _assignment(create_dataset(config).load_splits())
    (tmp_path / "a" / "a_003.jpg").unlink()
    after = _assignment(create_dataset(config).load_splits())
    assert {p: s for p, s in before.items() if p.parent.name == "b"} == {
        p: s for p, s in after.items() if p.parent.name == "b"
    }


@pytest.mark.parametrize(
    ("valid", "test"), [(0.1, 0.1), (0.2, 0.1), (0.15, 0.4), (0.3, 0.3), (0.5, 0.0)]
)
def test_one_more_file_moves_at_most_three_others_of_its_class(valid: float, test: float) -> None:
    config = SplitConfig(valid=valid, test=test, seed=5)
    root = Path("data")
    for n in range(1, 41):
        files = [Sample(root / "a" / f"{i}.jpg", 0) for i in range(n)]
        extra = Sample(root / "a" / "new.jpg", 0)
        before = _by_path(stratified_split(files, config, root=root))
        after = _by_path(stratified_split([*files, extra], config, root=root))
        moved = [p for p in before if before[p] != after[p]]
        assert len(moved) <= 3, (n, moved)
        counts = {name: list(after.values()).count(name) for name in ("valid", "test")}
        n_valid = min(int(np.floor((n + 1) * valid + 0.5)), n)
        assert counts["valid"] == n_valid
        assert list(after.values()).count("train") >= 1


def _by_path(parts: tuple[list[Sample], list[Sample], list[Sample]]) -> dict[Path, str]:
    return {
        s.path: name
        for name, part in zip(("train", "valid", "test"), parts, strict=True)
        for s in part
    }


def test_split_depends_on_paths_relative_to_the_class_folders(tmp_path: Path) -> None:
    _write_classes(tmp_path / "flat", {"a": 10, "b": 7})
    shutil.copytree(tmp_path / "flat", tmp_path / "channels" / "train")
    split = SplitConfig(valid=0.2, test=0.2, seed=2)
    flat = create_dataset(DataConfig(root=tmp_path / "flat", split=split)).load_splits()
    channel = create_dataset(
        DataConfig(train_root=tmp_path / "channels" / "train", split=split)
    ).load_splits()
    nested = create_dataset(DataConfig(root=tmp_path / "channels", split=split)).load_splits()
    for name in ("train", "valid", "test"):
        expected = [s.path.relative_to(tmp_path / "flat") for s in flat.split(name)]
        assert expected
        for other in (channel, nested):
            root = tmp_path / "channels" / "train"
            assert [s.path.relative_to(root) for s in other.split(name)] == expected


# ------------------------------------------------------------------------------ manifest


def _relative(splits: DatasetSplits) -> dict[str, list[tuple[str, int]]]:
    out = {}
    for name in ("train", "valid", "test"):
        base = splits.roots.get(name, splits.roots["train"])
        out[name] = [(s.path.relative_to(base).as_posix(), s.target) for s in splits.split(name)]
    return out


def test_manifest_round_trips_and_ignores_files_added_later(tmp_path: Path) -> None:
    _write_classes(tmp_path / "data", {"cats": 8, "dogs": 6})
    config = DataConfig(root=tmp_path / "data", split=SplitConfig(valid=0.25, test=0.25))
    splits = create_dataset(config).load_splits()
    path = splits.write_manifest(tmp_path / "run" / "splits.json")
    assert load_manifest(path, config) == splits
    record = json.loads(path.read_text())
    assert record["format"] == "breedclf.splits"
    assert record["version"] == 1
    assert record["dataset"] == "imagefolder"
    assert record["classes"] == ["cats", "dogs"]
    assert record["splits"]["valid"]["source"] == "train"
    listed = [item for split in record["splits"].values() for item in split["files"]]
    assert ["dogs/dogs_000.jpg", 1] in listed
    assert len(listed) == 14
    (tmp_path / "data" / "dogs" / "dogs_new.jpg").write_bytes(_image(50))
    assert load_manifest(path, config) == splits


def test_manifest_resolves_a_moved_dataset_and_sagemaker_channels(tmp_path: Path) -> None:
    make_dog_tree(tmp_path / "dogImages")
    shutil.rmtree(tmp_path / "dogImages" / "valid")
    config = DataConfig(dataset="dogimages", root=tmp_path / "dogImages")
    splits = create_dataset(config).load_splits()
    assert splits.counts() == {"train": 13, "valid": 3, "test": 12}
    manifest = splits.write_manifest(tmp_path / "splits.json")

    shutil.move(tmp_path / "dogImages", tmp_path / "input" / "data")
    data = tmp_path / "input" / "data"
    channels = DataConfig(dataset="dogimages", train_root=data / "train", test_root=data / "test")
    loaded = load_manifest(manifest, channels)
    assert loaded.classes == splits.classes
    assert _relative(loaded) == _relative(splits)
    assert all(s.path.is_file() for s in loaded.train + loaded.valid + loaded.test)
    assert loaded.roots == {"train": data / "train", "test": data / "test"}


def test_manifest_refuses_gone_files_with_count_and_names(tmp_path: Path) -> None:
    _write_classes(tmp_path / "data", {"cats": 8, "dogs": 6})
    config = DataConfig(root=tmp_path / "data")
    manifest = create_dataset(config).load_splits().write_manifest(tmp_path / "splits.json")
    for i in (1, 2, 5):
        (tmp_path / "data" / "dogs" / f"dogs_{i:03d}.jpg").unlink()
    with pytest.raises(
        DatasetError,
        match=r"3 of the 14 files listed in .*splits\.json are gone, e\.g\. "
        r"\S+/data/dogs/dogs_00[125]\.jpg, \S+/dogs_00[125]\.jpg, \S+/dogs_00[125]\.jpg: the",
    ):
        load_manifest(manifest, config)


def test_manifest_refuses_other_classes_other_datasets_and_bad_files(tmp_path: Path) -> None:
    make_dog_tree(tmp_path / "dogs")
    config = DataConfig(dataset="dogimages", root=tmp_path / "dogs")
    manifest = create_dataset(config).load_splits().write_manifest(tmp_path / "splits.json")
    with pytest.raises(DatasetError, match=r"records splits of dataset 'dogimages'.*'imagefolder'"):
        load_manifest(manifest, DataConfig(root=tmp_path / "dogs"))
    (tmp_path / "dogs" / "train" / "004.Beagle").mkdir()
    with pytest.raises(DatasetError, match=r"classes in .* differ .*: 1 new \(Beagle\)"):
        load_manifest(manifest, config)
    shutil.rmtree(tmp_path / "dogs" / "train" / "004.Beagle")
    record = json.loads(manifest.read_text())
    record["version"] = 2
    manifest.write_text(json.dumps(record))
    with pytest.raises(DatasetError, match=r"manifest version 2; this breedclf reads version 1"):
        load_manifest(manifest, config)
    record["version"] = 1
    record["splits"]["test"]["files"][0] = ["../../etc/passwd", 0]
    manifest.write_text(json.dumps(record))
    with pytest.raises(DatasetError, match=r"is corrupt: bad entry \['\.\./\.\./etc/passwd', 0\]"):
        load_manifest(manifest, config)
    manifest.write_text("{}")
    with pytest.raises(DatasetError, match="is not a breedclf split manifest"):
        load_manifest(manifest, config)
    with pytest.raises(DatasetError, match=r"split manifest .*nope\.json does not exist"):
        load_manifest(tmp_path / "nope.json", config)


# ------------------------------------------------------------------------- per-split roots


def test_dogimages_from_per_split_roots_matches_the_root_layout(tmp_path: Path) -> None:
    make_dog_tree(tmp_path)
    by_root = create_dataset(DataConfig(dataset="dogimages", root=tmp_path)).load_splits()
    config = DataConfig(
        dataset="dogimages",
        train_root=tmp_path / "train",
        valid_root=tmp_path / "valid",
        test_root=tmp_path / "test",
    )
    by_channel = create_dataset(config).load_splits()
    assert by_channel == by_root
    assert by_channel.classes[1] == "Afghan hound"
    assert all(s.target == int(s.path.parent.name[:3]) - 1 for s in by_channel.train)


def test_per_split_roots_carve_a_missing_split_and_check_class_folders(tmp_path: Path) -> None:
    _write_classes(tmp_path / "train", {"a": 10, "b": 10})
    _write_classes(tmp_path / "valid", {"a": 2, "b": 1})
    config = DataConfig(
        train_root=tmp_path / "train", valid_root=tmp_path / "valid", split=SplitConfig(test=0.2)
    )
    splits = create_dataset(config).load_splits()
    assert splits.counts() == {"train": 16, "valid": 3, "test": 4}
    assert splits.roots == {"train": tmp_path / "train", "valid": tmp_path / "valid"}
    _write_classes(tmp_path / "valid", {"zebra": 1})
    with pytest.raises(DatasetError, match=r"'zebra' in the valid split .* does not exist in the"):
        create_dataset(config).load_splits()
    missing = DataConfig(train_root=tmp_path / "train", test_root=tmp_path / "nope")
    with pytest.raises(DatasetError, match=r"data\.test_root .*nope does not exist"):
        create_dataset(missing).load_splits()


def test_root_and_per_split_roots_are_mutually_exclusive() -> None:
    with pytest.raises(ConfigurationError, match=r"either root or per-split roots.*train_root"):
        validate_config(ExperimentConfig, {"data": {"root": "a", "train_root": "b"}})
    with pytest.raises(ConfigurationError, match=r"valid_root needs train_root"):
        validate_config(ExperimentConfig, {"data": {"valid_root": "v"}})
    config = validate_config(DataConfig, {"train_root": "t", "test_root": "x"})
    assert config.valid_root is None
