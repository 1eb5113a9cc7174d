"""Which files of an image tree count: one set of rules for training and ``data check``.

* Names starting with ``.`` or ``__`` are skipped, files and folders alike: ``.DS_Store``,
  ``.ipynb_checkpoints``, macOS's ``__MACOSX`` and ``._x.jpg``, ``__pycache__``.
* Symlinks to folders are followed (datasets are often assembled from links); a link to a folder
  that is already being walked (one of its ancestors) is a cycle and is reported, not entered.
* A file is an image when its extension is in :data:`IMAGE_EXTENSIONS` (case-insensitive).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from breedclf.data._images import IMAGE_EXTENSIONS
from breedclf.errors import DatasetError

__all__ = ["EntryKind", "TreeEntry", "is_skipped_name", "list_subfolders", "walk_tree"]

EntryKind: TypeAlias = Literal["image", "skipped", "other", "loop"]


@dataclass(frozen=True)
class TreeEntry:
    """One path met by :func:`walk_tree` and what it is.

    ``kind`` is ``image`` (a file to decode), ``skipped`` (a hidden or ``__`` name, not entered),
    ``other`` (a file without an image extension) or ``loop`` (a folder link back to an
    ancestor, not entered).
    """

    path: Path
    kind: EntryKind


def is_skipped_name(name: str) -> bool:
    """True for names that are never classes, samples or folders to enter (``.x``, ``__x``)."""
    return name.startswith((".", "__"))


def list_subfolders(directory: Path) -> list[Path]:
    """Folders (or links to folders) directly in ``directory`` that are not skipped, by name."""
    return [
        directory / entry.name
        for entry in _scan(directory)
        if not is_skipped_name(entry.name) and entry.is_dir()
    ]


def walk_tree(directory: Path) -> Iterator[TreeEntry]:
    """Every file and skipped entry under ``directory``, depth first, in name order.

    A folder's files come before its sub-folders. Links are followed; a cycle is yielded once as a
    ``loop`` entry and not entered, so the walk always ends.

    Raises:
        DatasetError: A folder cannot be listed (missing, or no permission).
    """
    yield from _walk(directory, frozenset({_identity(directory)}))


def _walk(directory: Path, ancestors: frozenset[tuple[int, int]]) -> Iterator[TreeEntry]:
    subfolders: list[Path] = []
    for entry in _scan(directory):
        path = directory / entry.name
        if is_skipped_name(entry.name):
            yield TreeEntry(path, "skipped")
        elif entry.is_dir():
            subfolders.append(path)
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            yield TreeEntry(path, "image")
        else:
            yield TreeEntry(path, "other")
    for folder in subfolders:
        identity = _identity(folder)
        if identity in ancestors:
            yield TreeEntry(folder, "loop")
        else:
            yield from _walk(folder, ancestors | {identity})


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    """Entries of ``directory`` sorted by name, or a DatasetError saying why not."""
    try:
        with os.scandir(directory) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(f"cannot list folder {directory}: {exc.strerror or exc}") from None


def _identity(folder: Path) -> tuple[int, int]:
    """(device, inode) of the folder a path resolves to: equal for a folder and links to it."""
    try:
        stat = folder.stat()
    except OSError as exc:
        raise DatasetError(f"cannot open folder {folder}: {exc.strerror or exc}") from None
    return stat.st_dev, stat.st_ino
