"""``breedclf data check``: decode every image of a tree and report the ones that fail."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from breedclf.data._images import load_image
from breedclf.data._walk import walk_tree
from breedclf.errors import DatasetError, ImageDecodeError

__all__ = ["ImageCheckReport", "check_images"]


@dataclass
class ImageCheckReport:
    """What :func:`check_images` found.

    Attributes:
        root: The folder scanned.
        checked: Number of image files decoded.
        bad: ``(path, reason)`` of every image that failed to decode.
        hidden_skipped: Hidden and ``__`` files and folders (``.ipynb_checkpoints``,
            ``__MACOSX``) that were not entered; training ignores them too.
        other_files: Files without an image extension (ignored by training).
        symlink_loops: Folder links back to one of their ancestors, not entered.
    """

    root: Path
    checked: int = 0
    bad: list[tuple[Path, str]] = field(default_factory=list)
    hidden_skipped: list[Path] = field(default_factory=list)
    other_files: list[Path] = field(default_factory=list)
    symlink_loops: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every image decoded."""
        return not self.bad


def _decode(path: str) -> str | None:
    try:
        load_image(path)
    except ImageDecodeError as exc:
        return str(exc)
    return None


def check_images(
    root: str | Path,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImageCheckReport:
    """Fully decode every image file under ``root``.

    The tree is walked by the rules training uses to find samples (hidden and ``__`` names
    skipped and listed, folder links followed, link cycles listed and not entered), so the images
    checked are the images training reads.

    Args:
        root: Folder to scan recursively.
        workers: Decoding processes (default: CPU count).
        progress: Called with ``(done, total)`` as files finish.

    Raises:
        DatasetError: ``root`` is not a directory, or a folder in it cannot be listed.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"{base} does not exist or is not a directory")
    report = ImageCheckReport(root=base)
    images: list[Path] = []
    found = {
        "image": images,
        "skipped": report.hidden_skipped,
        "other": report.other_files,
        "loop": report.symlink_loops,
    }
    for entry in walk_tree(base):
        found[entry.kind].append(entry.path)
    n_workers = workers or os.cpu_count() or 1
    outcomes: list[str | None] = []
    with ExitStack() as stack:
        if n_workers > 1 and len(images) > 64:
            pool = stack.enter_context(ProcessPoolExecutor(n_workers))
            results = pool.map(_decode, map(str, images), chunksize=32)
        else:
            results = map(_decode, map(str, images))
        for i, result in enumerate(results, 1):
            outcomes.append(result)
            if progress:
                progress(i, len(images))
    report.checked = len(images)
    report.bad = [(p, r) for p, r in zip(images, outcomes, strict=True) if r is not None]
    return report
