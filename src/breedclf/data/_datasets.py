"""Dataset sources: find classes and the train/valid/test file lists of an image tree."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

from breedclf._registry import Registry
from breedclf.config import DataConfig, SplitConfig
from breedclf.data._walk import list_subfolders, walk_tree
from breedclf.errors import DatasetError

__all__ = [
    "DATASETS",
    "DatasetSplits",
    "DogImagesDataset",
    "ImageFolderDataset",
    "Sample",
    "create_dataset",
    "list_datasets",
    "register_dataset",
]

SPLIT_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "valid": ("valid", "val", "validation"),
    "test": ("test", "testing"),
}


@dataclass(frozen=True)
class Sample:
    """One labelled image file."""

    path: Path
    target: int


@dataclass(frozen=True)
class DatasetSplits:
    """Class names (index order) and the samples of each split."""

    classes: list[str]
    train: list[Sample]
    valid: list[Sample]
    test: list[Sample] = field(default_factory=list)

    def split(self, name: str) -> list[Sample]:
        """The samples of ``name`` (``train``, ``valid`` or ``test``)."""
        if name not in SPLIT_NAMES:
            raise DatasetError(f"unknown split {name!r}; choose train, valid or test")
        samples: list[Sample] = getattr(self, name)
        return samples

    def counts(self) -> dict[str, int]:
        """Number of images per split."""
        return {name: len(self.split(name)) for name in SPLIT_NAMES}


D = TypeVar("D", bound=type["ImageFolderDataset"])

DATASETS: Registry[type[ImageFolderDataset]] = Registry("dataset")


def register_dataset(name: str) -> Callable[[D], D]:
    """Class decorator that registers a dataset under ``name`` (usable as ``data.dataset``).

    Example:
        >>> @register_dataset("flowers")                      # doctest: +SKIP
        ... class Flowers(ImageFolderDataset):
        ...     def parse_class_name(self, folder: str) -> str:
        ...         return folder.replace("_", " ").title()
    """

    def decorator(cls: D) -> D:
        DATASETS.add(name, cls)
        return cls

    return decorator


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered dataset names matching a wildcard pattern."""
    return DATASETS.list(pattern)


def create_dataset(config: DataConfig) -> ImageFolderDataset:
    """Instantiate the dataset named by ``config.dataset``."""
    return DATASETS.get(config.dataset)(config)


@register_dataset("imagefolder")
class ImageFolderDataset:
    """Any tree of class folders, split or not.

    Two layouts are understood:

    * ``root/{train,valid,test}/<class>/<image>`` (``val``/``validation`` also accepted; a missing
      ``valid`` or ``test`` split is carved out of ``train`` with ``config.split``);
    * ``root/<class>/<image>``, split into train/valid/test by a seeded, stratified
      ``config.split``.

    Hidden and ``__`` names (``.ipynb_checkpoints``, ``.DS_Store``, ``__MACOSX``) are never classes
    or samples; folder links are followed (cycles are not entered).
    Subclasses change how folder names become labels (:meth:`parse_class_name`), how labels get
    indices (:meth:`class_order`), or where files come from (:meth:`resolve_root`).
    """

    name: ClassVar[str] = "imagefolder"

    def __init__(self, config: DataConfig) -> None:
        self.config = config

    def resolve_root(self) -> Path:
        """The dataset root directory; raises :class:`DatasetError` if it is unusable."""
        if self.config.root is None:
            raise DatasetError(
                f"dataset {self.name!r} needs data.root: the folder that holds the class folders"
            )
        root = Path(self.config.root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"data.root {root} does not exist or is not a directory")
        return root

    def parse_class_name(self, folder: str) -> str:
        """Human-readable label of a class folder (default: the folder name)."""
        return folder

    def class_order(self, folders: list[str]) -> list[str]:
        """Class folders in index order (default: sorted by name)."""
        return sorted(folders)

    def load_splits(self) -> DatasetSplits:
        """Discover classes and samples of every split."""
        root = self.resolve_root()
        split_dirs = _find_split_dirs(root)
        if not split_dirs:
            folders = _class_folders(root)
            order = self.class_order(folders)
            index = {f: i for i, f in enumerate(order)}
            everything = _samples(root, index)
            train, valid, test = stratified_split(everything, self.config.split)
        else:
            if "train" not in split_dirs:
                raise DatasetError(
                    f"{root} has {', '.join(sorted(split_dirs))} folders but no train folder"
                )
            folders = _class_folders(split_dirs["train"])
            order = self.class_order(folders)
            index = {f: i for i, f in enumerate(order)}
            per_split = {
                name: _samples(path, index, source=name) for name, path in split_dirs.items()
            }
            train = per_split["train"]
            has_valid, has_test = "valid" in per_split, "test" in per_split
            valid, test = per_split.get("valid", []), per_split.get("test", [])
            if not (has_valid and has_test):
                # A missing held-out split is carved out of train, stratified and seeded.
                cfg = SplitConfig(
                    valid=0.0 if has_valid else self.config.split.valid,
                    test=0.0 if has_test else self.config.split.test,
                    seed=self.config.split.seed,
                )
                train, carved_valid, carved_test = stratified_split(train, cfg)
                valid = valid if has_valid else carved_valid
                test = test if has_test else carved_test
        classes = [self.parse_class_name(f) for f in order]
        if not train:
            raise DatasetError(f"no training images found under {root}")
        return DatasetSplits(classes=classes, train=train, valid=valid, test=test)


_DOG_FOLDER = re.compile(r"^(\d{3})\.(.+)$")


def _dog_folder(folder: str) -> tuple[int, str]:
    """``"012.Australian_shepherd"`` → ``(12, "Australian_shepherd")``, or a DatasetError."""
    match = _DOG_FOLDER.match(folder)
    if not match:
        raise DatasetError(f"dogImages class folder {folder!r} is not named NNN.Breed_Name")
    return int(match.group(1)), match.group(2)


@register_dataset("dogimages")
class DogImagesDataset(ImageFolderDataset):
    """Udacity's dogImages: ``{train,valid,test}/NNN.Breed_Name/*.jpg``.

    Class index is ``NNN - 1`` and the label is the breed with underscores as spaces:
    ``"001.Affenpinscher"`` → index 0, ``"Affenpinscher"``;
    ``"002.Afghan_hound"`` → index 1, ``"Afghan hound"``.
    """

    name: ClassVar[str] = "dogimages"

    def parse_class_name(self, folder: str) -> str:
        """``"012.Australian_shepherd"`` → ``"Australian shepherd"``."""
        return _dog_folder(folder)[1].replace("_", " ")

    def class_order(self, folders: list[str]) -> list[str]:
        """Order by the folder's number NNN, which must run 1..K without gaps."""
        numbered: dict[int, str] = {}
        for folder in folders:
            number = _dog_folder(folder)[0]
            if number in numbered:
                raise DatasetError(f"two class folders share number {number}: {folder!r}")
            numbered[number] = folder
        expected = list(range(1, len(numbered) + 1))
        if sorted(numbered) != expected:
            missing = sorted(set(expected) - set(numbered))
            raise DatasetError(
                f"dogImages class numbers must run 001..{len(numbered):03d} without gaps "
                f"(index = NNN - 1); missing {missing[:5]}"
            )
        return [numbered[n] for n in expected]


def stratified_split(
    samples: list[Sample], config: SplitConfig
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Split samples per class with a seeded shuffle: train, valid, test.

    Each class keeps at least one training image; ``n × fraction`` images of a class (rounded,
    halves up) go to valid and to test.
    """
    by_class: dict[int, list[Sample]] = {}
    for sample in sorted(samples, key=lambda s: (s.target, str(s.path))):
        by_class.setdefault(sample.target, []).append(sample)
    rng = random.Random(config.seed)
    train: list[Sample] = []
    valid: list[Sample] = []
    test: list[Sample] = []
    for target in sorted(by_class):
        items = by_class[target]
        rng.shuffle(items)
        n = len(items)
        # Round half up (Python's round() halves to even: 5 images x 10 % would give 0).
        n_valid = min(math.floor(n * config.valid + 0.5), max(n - 1, 0))
        n_test = min(math.floor(n * config.test + 0.5), max(n - 1 - n_valid, 0))
        valid += items[:n_valid]
        test += items[n_valid : n_valid + n_test]
        train += items[n_valid + n_test :]
    return train, valid, test


def _find_split_dirs(root: Path) -> dict[str, Path]:
    children = {p.name.lower(): p for p in list_subfolders(root)}
    found: dict[str, Path] = {}
    for split, aliases in SPLIT_NAMES.items():
        for alias in aliases:
            if alias in children:
                found[split] = children[alias]
                break
    return found


def _class_folders(directory: Path) -> list[str]:
    folders = [p.name for p in list_subfolders(directory)]
    if not folders:
        raise DatasetError(
            f"{directory} has no class folders: expected {directory}/<class name>/<image files>"
        )
    return folders


def _samples(directory: Path, index: dict[str, int], *, source: str = "") -> list[Sample]:
    """The images of every class folder of ``directory``, walked by the shared tree rules."""
    samples: list[Sample] = []
    for folder in list_subfolders(directory):
        if folder.name not in index:
            raise DatasetError(
                f"class folder {folder.name!r} in the {source or 'dataset'} split of "
                f"{directory.parent} does not exist in the train split"
            )
        target = index[folder.name]
        samples += [Sample(e.path, target) for e in walk_tree(folder) if e.kind == "image"]
    return samples
