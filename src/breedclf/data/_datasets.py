"""Dataset sources: find classes and the train/valid/test file lists of an image tree."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, NonNegativeInt, ValidationError

from breedclf._io import atomic_path
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
    "load_manifest",
    "register_dataset",
    "stratified_split",
]

SPLIT_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "valid": ("valid", "val", "validation"),
    "test": ("test", "testing"),
}

SplitName = Literal["train", "valid", "test"]

MANIFEST_FORMAT = "breedclf.splits"
MANIFEST_VERSION = 1
"""Version of the ``splits.json`` layout written by :meth:`DatasetSplits.write_manifest`."""


@dataclass(frozen=True)
class Sample:
    """One labelled image file."""

    path: Path
    target: int


@dataclass(frozen=True)
class DatasetSplits:
    """Class names (index order) and the samples of each split.

    Attributes:
        classes: Labels, in class-index order.
        train: Training samples.
        valid: Validation samples.
        test: Test samples.
        roots: The folder of each split that has one of its own (always ``train``; ``valid`` and
            ``test`` unless they were carved out of train). Manifest paths are relative to these.
        dataset: The registered dataset name the splits were read by.
    """

    classes: list[str]
    train: list[Sample]
    valid: list[Sample]
    test: list[Sample] = field(default_factory=list)
    roots: dict[str, Path] = field(kw_only=True)
    dataset: str = field(kw_only=True)

    def split(self, name: str) -> list[Sample]:
        """The samples of ``name`` (``train``, ``valid`` or ``test``)."""
        if name not in SPLIT_NAMES:
            raise DatasetError(f"unknown split {name!r}; choose train, valid or test")
        samples: list[Sample] = getattr(self, name)
        return samples

    def counts(self) -> dict[str, int]:
        """Number of images per split."""
        return {name: len(self.split(name)) for name in SPLIT_NAMES}

    def write_manifest(self, path: str | Path) -> Path:
        """Write the exact split assignment to ``path`` (``splits.json``), atomically.

        The file holds the dataset name, the classes and, per split, the folder its files are
        relative to (``source``: the split's own folder, or ``train`` when it was carved out of
        train) and the ``[relative path, target]`` of every file, one per line. Read it back with
        :func:`load_manifest`, from the same data or a moved copy of it.

        Example:
            >>> splits.write_manifest(run_dir / "splits.json")  # doctest: +SKIP
            >>> load_manifest(run_dir / "splits.json", config.data)  # doctest: +SKIP

        Raises:
            DatasetError: A sample does not lie under its split's folder (hand-built splits).
        """
        splits: dict[str, tuple[str, list[tuple[str, int]]]] = {}
        for name in SPLIT_NAMES:
            source = name if name in self.roots else "train"
            if source not in self.roots:
                raise DatasetError(f"DatasetSplits.roots has no train folder: {self.roots}")
            base = self.roots[source]
            files = []
            for sample in self.split(name):
                try:
                    relative = sample.path.relative_to(base).as_posix()
                except ValueError:
                    raise DatasetError(
                        f"{sample.path} of the {name} split is not under its folder {base}"
                    ) from None
                files.append((relative, sample.target))
            splits[name] = (source, files)
        target = Path(path)
        with atomic_path(target) as tmp:
            tmp.write_text(self._manifest_text(splits), encoding="utf-8")
        return target

    def _manifest_text(self, splits: dict[str, tuple[str, list[tuple[str, int]]]]) -> str:
        """JSON with one file per line, so two manifests diff line by line."""

        def dump(value: object) -> str:
            return json.dumps(value, ensure_ascii=False)

        lines = [
            "{",
            f'  "format": {dump(MANIFEST_FORMAT)},',
            f'  "version": {MANIFEST_VERSION},',
            f'  "dataset": {dump(self.dataset)},',
            f'  "classes": {dump(self.classes)},',
            '  "splits": {',
        ]
        for i, (name, (source, files)) in enumerate(splits.items()):
            lines.append(f'    {dump(name)}: {{"source": {dump(source)}, "files": [')
            lines += [
                f"      {dump(list(item))}{',' if j < len(files) - 1 else ''}"
                for j, item in enumerate(files)
            ]
            lines.append(f"    ]}}{',' if i < len(splits) - 1 else ''}")
        lines += ["  }", "}", ""]
        return "\n".join(lines)


class _ManifestSplit(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    source: SplitName
    files: list[tuple[str, NonNegativeInt]]


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    format: Literal["breedclf.splits"]
    version: Literal[1]
    dataset: str
    classes: list[str]
    splits: dict[SplitName, _ManifestSplit]


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


def load_manifest(path: str | Path, config: DataConfig) -> DatasetSplits:
    """Read the splits recorded by :meth:`DatasetSplits.write_manifest`, resolved against the data
    that ``config`` points at (``data.root`` or the per-split roots; it may have moved).

    Equivalent to ``create_dataset(config).load_manifest(path)``.

    Raises:
        DatasetError: The file is missing or not a manifest, was written for another dataset,
            the classes differ, or files it lists are gone.
    """
    return create_dataset(config).load_manifest(path)


@register_dataset("imagefolder")
class ImageFolderDataset:
    """Any tree of class folders, split or not.

    Three layouts are understood:

    * ``root/{train,valid,test}/<class>/<image>`` (``val``/``validation`` also accepted; a missing
      ``valid`` or ``test`` split is carved out of ``train`` with ``config.split``);
    * ``root/<class>/<image>``: every split is carved out of it with ``config.split``;
    * ``train_root/<class>/<image>`` with optional ``valid_root`` and ``test_root`` (SageMaker
      channels); a missing one is carved out of ``train_root``.

    Carving is stratified per class and stable per file (see :func:`stratified_split`). Hidden
    and ``__`` names (``.ipynb_checkpoints``, ``__MACOSX``) are never classes or samples; folder
    links are followed. Subclasses change how folder names become labels
    (:meth:`parse_class_name`), how labels get indices (:meth:`class_order`), or where files
    come from (:meth:`resolve_root`).
    """

    name: ClassVar[str] = "imagefolder"

    def __init__(self, config: DataConfig) -> None:
        self.config = config

    def resolve_root(self) -> Path:
        """The dataset root directory; raises :class:`DatasetError` if it is unusable."""
        if self.config.root is None:
            raise DatasetError(
                f"dataset {self.name!r} needs data.root (the folder that holds the class "
                f"folders) or data.train_root"
            )
        root = Path(self.config.root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"data.root {root} does not exist or is not a directory")
        return root

    def resolve_split_roots(self) -> dict[str, Path]:
        """The folder of class folders of each split that has one; always includes ``train``.

        From ``data.train_root``/``valid_root``/``test_root`` when given, else from the split
        sub-folders of :meth:`resolve_root`, else ``{"train": root}`` (everything carved).
        """
        cfg = self.config
        if cfg.train_root is not None:
            given = {"train": cfg.train_root, "valid": cfg.valid_root, "test": cfg.test_root}
            roots: dict[str, Path] = {}
            for split, folder in given.items():
                if folder is None:
                    continue
                path = Path(folder).expanduser()
                if not path.is_dir():
                    raise DatasetError(
                        f"data.{split}_root {path} does not exist or is not a directory"
                    )
                roots[split] = path
            return roots
        root = self.resolve_root()
        found = _find_split_dirs(root)
        if not found:
            return {"train": root}
        if "train" not in found:
            raise DatasetError(f"{root} has {', '.join(sorted(found))} folders but no train folder")
        return found

    def parse_class_name(self, folder: str) -> str:
        """Human-readable label of a class folder (default: the folder name)."""
        return folder

    def class_order(self, folders: list[str]) -> list[str]:
        """Class folders in index order (default: sorted by name)."""
        return sorted(folders)

    def load_splits(self) -> DatasetSplits:
        """Discover classes and samples of every split."""
        roots = self.resolve_split_roots()
        order = self._class_folders(roots["train"])
        index = {f: i for i, f in enumerate(order)}
        found = {
            name: _samples(folder, index, name, roots["train"]) for name, folder in roots.items()
        }
        train = found["train"]
        if not train:
            raise DatasetError(f"no training images found under {roots['train']}")
        carve = SplitConfig(
            valid=0.0 if "valid" in roots else self.config.split.valid,
            test=0.0 if "test" in roots else self.config.split.test,
            seed=self.config.split.seed,
        )
        train, carved_valid, carved_test = stratified_split(train, carve, root=roots["train"])
        return DatasetSplits(
            classes=[self.parse_class_name(f) for f in order],
            train=train,
            valid=found.get("valid", carved_valid),
            test=found.get("test", carved_test),
            roots=roots,
            dataset=self.name,
        )

    def load_manifest(self, path: str | Path) -> DatasetSplits:
        """The splits recorded in a ``splits.json``, resolved against this dataset's folders.

        Files added to the data since the manifest was written are not used; the classes must be
        the same, and every listed file must still exist.

        Raises:
            DatasetError: The file is missing or not a manifest, was written for another dataset,
                the classes differ, or files it lists are gone.
        """
        file = Path(path)
        manifest = _read_manifest(file)
        if manifest.dataset != self.name:
            raise DatasetError(
                f"{file} records splits of dataset {manifest.dataset!r}, but data.dataset is "
                f"{self.name!r}; use the data config the manifest was written with"
            )
        roots = self.resolve_split_roots()
        classes = [self.parse_class_name(f) for f in self._class_folders(roots["train"])]
        if classes != manifest.classes:
            raise DatasetError(
                f"the classes in {roots['train']} differ from those in {file}: "
                f"{_describe_class_change(manifest.classes, classes)}"
            )
        samples: dict[str, list[Sample]] = {name: [] for name in SPLIT_NAMES}
        missing: list[str] = []
        for name, entry in manifest.splits.items():
            if entry.source not in roots:
                raise DatasetError(
                    f"{file} lists {name} files relative to a {entry.source} folder, but this "
                    f"data has none (folders: {', '.join(sorted(roots))})"
                )
            base = roots[entry.source]
            for relative, target in entry.files:
                rel = PurePosixPath(relative)
                if rel.is_absolute() or ".." in rel.parts or target >= len(classes):
                    raise DatasetError(f"{file} is corrupt: bad entry {[relative, target]}")
                sample = Sample(base.joinpath(*rel.parts), target)
                if not sample.path.is_file():
                    missing.append(str(sample.path))
                samples[name].append(sample)
        if missing:
            total = sum(len(entry.files) for entry in manifest.splits.values())
            raise DatasetError(
                f"{len(missing)} of the {total} files listed in {file} are gone, e.g. "
                f"{', '.join(missing[:5])}: the data changed since the splits were recorded"
            )
        return DatasetSplits(
            classes=classes,
            train=samples["train"],
            valid=samples["valid"],
            test=samples["test"],
            roots=roots,
            dataset=self.name,
        )

    def _class_folders(self, train: Path) -> list[str]:
        """Class folder names of the training folder, in index order."""
        folders = [p.name for p in list_subfolders(train)]
        if not folders:
            raise DatasetError(
                f"{train} has no class folders: expected {train}/<class name>/<image files>"
            )
        return self.class_order(folders)


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
    samples: list[Sample], config: SplitConfig, *, root: Path
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Split samples per class, stably per file: train, valid, test.

    Each class's files are ranked by the SHA-256 of ``"<seed>:<path relative to root>"`` (the
    relative path starts with the class folder). The first ``n × valid`` of a class (rounded,
    halves up) go to valid, the next ``n × test`` to test, the rest to train; each class keeps at
    least one training image. A file's rank depends only on its own name, so changing one
    class never moves a file of another, and adding or removing one file of a class moves at
    most 3 of its other files (one across each boundary whose count changes; usually none).
    Every output keeps the order of ``samples``.

    Args:
        samples: Labelled files, all under ``root``.
        config: Fractions and seed.
        root: The folder of class folders; keys are relative to it, so a moved dataset (or the
            same files under a SageMaker channel) splits the same way.

    Raises:
        DatasetError: A sample is not under ``root``.
    """
    by_class: dict[int, list[tuple[bytes, str, Sample]]] = {}
    for sample in samples:
        try:
            relative = sample.path.relative_to(root).as_posix()
        except ValueError:
            raise DatasetError(f"{sample.path} is not under the split root {root}") from None
        key = hashlib.sha256(f"{config.seed}:{relative}".encode()).digest()
        by_class.setdefault(sample.target, []).append((key, relative, sample))
    assigned: dict[Path, str] = {}
    for ranked in by_class.values():
        ranked.sort(key=lambda item: item[:2])
        n = len(ranked)
        # Round half up (Python's round() halves to even: 5 images x 10 % would give 0).
        n_valid = min(math.floor(n * config.valid + 0.5), max(n - 1, 0))
        n_test = min(math.floor(n * config.test + 0.5), max(n - 1 - n_valid, 0))
        for rank, (_, _, sample) in enumerate(ranked):
            split = "valid" if rank < n_valid else "test" if rank < n_valid + n_test else "train"
            assigned[sample.path] = split
    parts: dict[str, list[Sample]] = {name: [] for name in SPLIT_NAMES}
    for sample in samples:
        parts[assigned[sample.path]].append(sample)
    return parts["train"], parts["valid"], parts["test"]


def _read_manifest(file: Path) -> _Manifest:
    """Parse and validate a ``splits.json``, or raise a DatasetError saying what is wrong."""
    try:
        text = file.read_text(encoding="utf-8")
        data: Any = json.loads(text)
    except FileNotFoundError:
        raise DatasetError(f"split manifest {file} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{file} is not a readable split manifest: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise DatasetError(
            f"{file} is not a breedclf split manifest (no format {MANIFEST_FORMAT!r})"
        )
    version = data.get("version")
    if version != MANIFEST_VERSION:
        raise DatasetError(
            f"{file} has split manifest version {version!r}; this breedclf reads version "
            f"{MANIFEST_VERSION} (a newer breedclf wrote it?)"
        )
    try:
        return _Manifest.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise DatasetError(f"{file} is corrupt: {where}: {first['msg']}") from None


def _describe_class_change(recorded: list[str], current: list[str]) -> str:
    """'2 new: a, b; 1 gone: c' or the first index whose class differs."""
    new = [c for c in current if c not in recorded]
    gone = [c for c in recorded if c not in current]
    parts = []
    if new:
        parts.append(f"{len(new)} new ({', '.join(new[:5])})")
    if gone:
        parts.append(f"{len(gone)} gone ({', '.join(gone[:5])})")
    if parts:
        return "; ".join(parts)
    at = next(i for i, (a, b) in enumerate(zip(recorded, current, strict=True)) if a != b)
    return f"same classes in another order (index {at}: {recorded[at]!r} became {current[at]!r})"


def _find_split_dirs(root: Path) -> dict[str, Path]:
    children = {p.name.lower(): p for p in list_subfolders(root)}
    found: dict[str, Path] = {}
    for split, aliases in SPLIT_NAMES.items():
        for alias in aliases:
            if alias in children:
                found[split] = children[alias]
                break
    return found


def _samples(directory: Path, index: dict[str, int], split: str, train: Path) -> list[Sample]:
    """The images of every class folder of ``directory``, walked by the shared tree rules."""
    samples: list[Sample] = []
    for folder in list_subfolders(directory):
        if folder.name not in index:
            raise DatasetError(
                f"class folder {folder.name!r} in the {split} split ({directory}) does not exist "
                f"in the train split ({train})"
            )
        target = index[folder.name]
        samples += [Sample(e.path, target) for e in walk_tree(folder) if e.kind == "image"]
    return samples
