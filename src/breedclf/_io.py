"""Crash-safe file writes shared by checkpoints, saved models and metric logs."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

__all__ = ["atomic_directory", "atomic_path", "fsync_directory", "save_weights"]

_umask_lock = threading.Lock()


def _current_umask() -> int:
    # The only portable way to read the umask is to set it; the lock keeps threads of this
    # process from seeing the temporary value.
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def fsync_directory(path: str | Path) -> None:
    """Make a rename or new entry in directory ``path`` durable (a no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (and Windows) cannot fsync a directory
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it is fsynced and renamed over ``path``.

    A process killed mid-write leaves the previous file intact (``os.replace`` is atomic on
    POSIX and Windows), never a truncated one. The file gets the permissions a plain ``open``
    would give it (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``, and the
    directory is fsynced after the rename so the new name survives a power loss.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_directory(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


_RENAME_EXCHANGE = 2  # linux/fs.h


@functools.cache
def _renameat2() -> Any:
    """libc's ``renameat2``, looked up once (``find_library`` runs ``ldconfig``), or ``None``."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    try:
        return ctypes.CDLL(libc_name, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``; False if unsupported."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return int(result) == 0


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``path`` as a whole.

    Readers see either the complete old directory or the complete new one, never new files
    next to old ones: on Linux the two directories are swapped in one ``renameat2`` call; where
    that is unavailable, the old directory is moved aside and the new one renamed in (a crash
    between the two renames leaves both complete directories, the old one as
    ``.<name>.previous``). Files are fsynced before the swap.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_current_umask())
        for child in tmp.rglob("*"):
            if child.is_file():
                with open(child, "rb+") as fh:
                    os.fsync(fh.fileno())
        fsync_directory(tmp)
        if target.is_dir() and _exchange(tmp, target):
            fsync_directory(target.parent)
            shutil.rmtree(tmp)  # now the old directory
            return
        previous = target.parent / f".{target.name}.previous"
        if target.exists():
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(target, previous)
        os.replace(tmp, target)
        fsync_directory(target.parent)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_weights(
    model: nn.Module, path: str | Path, *, metadata: dict[str, str] | None = None
) -> None:
    """Write ``model``'s state dict (on CPU) to a safetensors file, atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
