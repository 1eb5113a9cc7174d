"""``breedclf data check``: decode every image of a tree and report the ones that fail."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from breedclf.data._images import IMAGE_EXTENSIONS, load_image
from breedclf.errors import DatasetError, ImageDecodeError

__all__ = ["ImageCheckReport", "check_images"]


@dataclass
class ImageCheckReport:
    """What :func:`check_images` found."""

    root: Path
    checked: int = 0
    bad: list[tuple[Path, str]] = field(default_factory=list)
    hidden_skipped: list[Path] = field(default_factory=list)
    other_files: list[Path] = field(default_factory=list)

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
    """Fully decode every image file under ``root`` (hidden folders are skipped, and listed).

    Args:
        root: Folder to scan recursively.
        workers: Decoding processes (default: CPU count).
        progress: Called with ``(done, total)`` as files finish.

    Raises:
        DatasetError: ``root`` is not a directory.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"{base} does not exist or is not a directory")
    report = ImageCheckReport(root=base)
    images: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(base):
        for d in list(dirnames):
            if d.startswith("."):
                report.hidden_skipped.append(Path(dirpath) / d)
                dirnames.remove(d)
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith("."):
                report.hidden_skipped.append(path)
            elif path.suffix.lower() in IMAGE_EXTENSIONS:
                images.append(path)
            else:
                report.other_files.append(path)
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
