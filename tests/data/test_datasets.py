from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from breedclf.config import DataConfig, SplitConfig
from breedclf.data import (
    DATASETS,
    ImageFolderDataset,
    check_images,
    create_dataset,
    list_datasets,
    register_dataset,
    stratified_split,
)
from breedclf.errors import DatasetError, UnknownNameError
from tests.conftest import jpeg_bytes

BREEDS = ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"]


def _photo(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def make_dog_tree(root: Path, per_class: int = 4) -> dict[str, Path]:
    """A dogImages-style tree with the awkward files real copies contain."""
    for split in ("train", "valid", "test"):
        for c, breed in enumerate(BREEDS):
            folder = root / split / breed
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{breed[4:]}_{i:05d}.jpg").write_bytes(jpeg_bytes(_photo(c * 100 + i)))
    train = root / "train"
    hidden = train / ".ipynb_checkpoints"
    hidden.mkdir()
    (hidden / "x-checkpoint.jpg").write_bytes(jpeg_bytes(_photo(7)))
    full = jpeg_bytes(Image.effect_noise((96, 96), 60).convert("RGB"))
    bad = {
        "truncated": train / BREEDS[1] / "Afghan_hound_truncated.jpg",
        "cmyk": train / BREEDS[0] / "Affenpinscher_cmyk.jpg",
        "palette": train / BREEDS[2] / "Airedale_palette.png",
        "sixteen": train / BREEDS[2] / "Airedale_16bit.png",
    }
    bad["truncated"].write_bytes(full[: len(full) // 2])
    bad["cmyk"].write_bytes(jpeg_bytes(Image.new("CMYK", (40, 30), (0, 200, 200, 0))))
    pal = Image.new("P", (30, 30), 1)
    pal.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    bad["palette"].write_bytes(buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray((np.arange(900).reshape(30, 30) * 70).astype(np.uint16)).save(buf, "PNG")
    bad["sixteen"].write_bytes(buf.getvalue())
    (train / BREEDS[0] / "notes.txt").write_text("not an image")
    (train / BREEDS[0] / ".DS_Store").write_bytes(b"\0\0")
    return bad


def test_dogimages_classes_indices_and_labels(tmp_path: Path) -> None:
    make_dog_tree(tmp_path)
    splits = create_dataset(DataConfig(dataset="dogimages", root=tmp_path)).load_splits()
    assert splits.classes == ["Affenpinscher", "Afghan hound", "Airedale terrier"]
    assert splits.counts() == {"train": 4 * 3 + 4, "valid": 12, "test": 12}
    for sample in splits.train + splits.valid + splits.test:
        folder = sample.path.parent.name
        assert sample.target == int(folder[:3]) - 1
        assert ".ipynb_checkpoints" not in sample.path.parts
        assert sample.path.suffix in {".jpg", ".png"}


def test_hidden_folder_never_becomes_class_zero(tmp_path: Path) -> None:
    make_dog_tree(tmp_path)
    splits = create_dataset(DataConfig(dataset="imagefolder", root=tmp_path)).load_splits()
    assert splits.classes == BREEDS
    assert all(".ipynb" not in c for c in splits.classes)


def test_data_check_reports_only_the_truncated_file(tmp_path: Path) -> None:
    bad = make_dog_tree(tmp_path)
    report = check_images(tmp_path, workers=1)
    assert [p for p, _ in report.bad] == [bad["truncated"]]
    assert "truncated" in report.bad[0][1]
    assert report.checked == 3 * 3 * 4 + 4
    assert any(p.name == ".ipynb_checkpoints" for p in report.hidden_skipped)
    assert [p.name for p in report.other_files] == ["notes.txt"]


def test_dogimages_rejects_gaps_and_bad_names(tmp_path: Path) -> None:
    for name in ("001.A", "003.C"):
        (tmp_path / "train" / name).mkdir(parents=True)
        (tmp_path / "train" / name / "x.jpg").write_bytes(jpeg_bytes(_photo(1)))
    with pytest.raises(DatasetError, match=r"without gaps.*missing \[2\]"):
        create_dataset(DataConfig(dataset="dogimages", root=tmp_path)).load_splits()
    (tmp_path / "train" / "Beagle").mkdir()
    with pytest.raises(DatasetError, match=r"'Beagle' is not named NNN\.Breed_Name"):
        create_dataset(DataConfig(dataset="dogimages", root=tmp_path)).load_splits()


def _flat_tree(root: Path, counts: dict[str, int]) -> None:
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            (root / name / f"{i}.jpg").write_bytes(jpeg_bytes(_photo(i)))


def test_single_folder_is_split_stratified_and_seeded(tmp_path: Path) -> None:
    _flat_tree(tmp_path, {"cats": 20, "dogs": 10})
    config = DataConfig(root=tmp_path, split=SplitConfig(valid=0.2, test=0.1, seed=3))
    a = create_dataset(config).load_splits()
    b = create_dataset(config).load_splits()
    assert a == b
    assert a.counts() == {"train": 21, "valid": 6, "test": 3}
    assert sum(s.target == 1 for s in a.valid) == 2  # 20 % of the 10 dogs
    paths = [s.path for s in a.train + a.valid + a.test]
    assert len(set(paths)) == 30
    other = create_dataset(
        config.model_copy(update={"split": SplitConfig(valid=0.2, test=0.1, seed=4)})
    )
    assert other.load_splits().valid != a.valid


def test_missing_valid_split_is_carved_from_train(tmp_path: Path) -> None:
    _flat_tree(tmp_path / "train", {"a": 10, "b": 10})
    _flat_tree(tmp_path / "test", {"a": 2, "b": 2})
    splits = create_dataset(DataConfig(root=tmp_path, split=SplitConfig(valid=0.2))).load_splits()
    assert splits.counts() == {"train": 16, "valid": 4, "test": 4}


def test_every_class_keeps_a_training_image() -> None:
    from breedclf.data import Sample

    samples = [Sample(Path(f"{i}.jpg"), 0) for i in range(1)] + [
        Sample(Path(f"b{i}.jpg"), 1) for i in range(2)
    ]
    train, _, _ = stratified_split(samples, SplitConfig(valid=0.5, test=0.4), root=Path())
    assert {s.target for s in train} == {0, 1}


def test_errors_for_missing_root_and_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"needs data\.root"):
        create_dataset(DataConfig()).load_splits()
    with pytest.raises(DatasetError, match="does not exist"):
        create_dataset(DataConfig(root=tmp_path / "nope")).load_splits()
    with pytest.raises(UnknownNameError, match="Did you mean 'dogimages'"):
        create_dataset(DataConfig(dataset="dogimage", root=tmp_path))


def test_valid_class_missing_from_train_is_an_error(tmp_path: Path) -> None:
    _flat_tree(tmp_path / "train", {"a": 2})
    _flat_tree(tmp_path / "valid", {"a": 1, "zebra": 1})
    with pytest.raises(DatasetError, match=r"'zebra'.*does not exist in the train split"):
        create_dataset(DataConfig(root=tmp_path)).load_splits()


def test_register_a_dataset_by_subclassing(tmp_path: Path) -> None:
    _flat_tree(tmp_path, {"rose_red": 3, "tulip_yellow": 3})

    with DATASETS.scoped():

        @register_dataset("test-flowers")
        class Flowers(ImageFolderDataset):
            def parse_class_name(self, folder: str) -> str:
                return folder.split("_")[0].title()

        assert "test-flowers" in list_datasets("test-*")
        splits = create_dataset(DataConfig(dataset="test-flowers", root=tmp_path)).load_splits()
        assert splits.classes == ["Rose", "Tulip"]
        with pytest.raises(ValueError, match="already registered"):
            register_dataset("test-flowers")(Flowers)
    assert "test-flowers" not in list_datasets("test-*")  # a rerun can register it again


def test_textures_dataset_is_real_and_disjoint(textures_root: Path) -> None:
    splits = create_dataset(DataConfig(dataset="textures", root=textures_root)).load_splits()
    assert splits.classes == ["brick", "grass", "gravel"]
    assert splits.counts() == {"train": 180, "valid": 45, "test": 45}
    with Image.open(splits.test[0].path) as image:
        assert 64 <= image.size[0] <= 96
    names = ("train", "valid", "test")
    files = {name: {s.path.resolve() for s in splits.split(name)} for name in names}
    assert not (files["train"] & files["valid"] or files["train"] & files["test"])
    assert not files["valid"] & files["test"]
    pixels = {name: {_pixel_hash(s.path) for s in splits.split(name)} for name in names}
    assert all(len(pixels[name]) == len(splits.split(name)) for name in names)
    assert not (pixels["train"] & pixels["valid"] or pixels["train"] & pixels["test"])
    assert not pixels["valid"] & pixels["test"]
    # Where each patch was cut from: no pixel of a held-out patch may appear in a training patch.
    bands = {"train": (0, 320), "valid": (320, 416), "test": (416, 512)}
    for target, texture in enumerate(splits.classes):
        photo = np.asarray(getattr(skimage_data, texture)())
        keys = _row_keys(photo)
        covered = {name: np.zeros(photo.shape, dtype=bool) for name in names}
        for name in names:
            for sample in (s for s in splits.split(name) if s.target == target):
                y, x, size = _locate(_pixels(sample.path), photo, keys)
                assert bands[name][0] <= y and y + size <= bands[name][1], (sample.path, y)
                covered[name][y : y + size, x : x + size] = True
        assert not (covered["train"] & (covered["valid"] | covered["test"])).any()
        assert not (covered["valid"] & covered["test"]).any()


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _pixel_hash(path: Path) -> str:
    return hashlib.sha256(_pixels(path).tobytes()).hexdigest()


def _row_keys(photo: np.ndarray) -> np.ndarray:
    """Every run of 8 pixels along a row of ``photo``, packed into one uint64 per position."""
    windows = np.lib.stride_tricks.sliding_window_view(photo, 8, axis=1)
    return np.ascontiguousarray(windows).view(np.uint64)[..., 0]


def _locate(patch: np.ndarray, photo: np.ndarray, keys: np.ndarray) -> tuple[int, int, int]:
    """(row, column, size) of the square ``patch`` inside ``photo``; it must occur exactly once."""
    first = np.ascontiguousarray(patch[0, :8]).view(np.uint64)[0]
    size = patch.shape[0]
    found = [
        (int(y), int(x))
        for y, x in np.argwhere(keys == first)
        if y + size <= photo.shape[0]
        and x + size <= photo.shape[1]
        and np.array_equal(photo[y : y + size, x : x + size], patch)
    ]
    assert len(found) == 1, f"patch found {len(found)} times in its photograph"
    return (*found[0], size)
