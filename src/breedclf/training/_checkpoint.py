"""Reading training checkpoints: always onto the CPU, never unpickling arbitrary objects."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from breedclf.errors import CheckpointError, ConfigurationError

__all__ = ["CHECKPOINT_FORMAT", "read_checkpoint", "read_checkpoint_metadata"]

CHECKPOINT_FORMAT = 1


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """A checkpoint's state dict with every tensor on the CPU.

    Loading onto the CPU first, whatever device wrote it, lets the RNG states (which must be CPU
    tensors) load as they are, and lets ``load_state_dict`` place model and optimizer state on
    the training device.

    Args:
        mmap: Map the file instead of reading it (only what is accessed is read).

    Raises:
        CheckpointError: The file is missing, unreadable, or not a breedclf checkpoint of a
            supported format.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # torch raises several types for corrupt files
        raise CheckpointError(f"checkpoint {path} is unreadable: {exc}") from None
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path} is not a breedclf training checkpoint")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {state['format']!r}; this breedclf reads format "
            f"{CHECKPOINT_FORMAT}"
        )
    return state


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The caller metadata stored with a checkpoint (``Trainer(checkpoint_metadata=...)``).

    Cheap: the file is memory-mapped onto the CPU and no weights are read. Use it to check that
    a checkpoint belongs to the run about to resume (e.g. a config fingerprint) before
    building anything.

    Returns:
        The metadata (``{}`` when the checkpoint was written without any).

    Raises:
        CheckpointError: The file is missing, unreadable or not a breedclf checkpoint.

    Example:
        >>> read_checkpoint_metadata("runs/exp/checkpoints/last.ckpt")  # doctest: +SKIP
        {'config_sha256': '3f2a...'}
    """
    metadata = read_checkpoint(path, mmap=True).get("metadata") or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"checkpoint {path} holds metadata of type {type(metadata).__name__}")
    return metadata


def checked_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A private copy of ``metadata``, refused unless ``weights_only`` loading can read it back."""
    if metadata is None:
        return {}
    _check_plain(dict(metadata), "checkpoint_metadata")
    return copy.deepcopy(dict(metadata))


def _check_plain(value: Any, where: str) -> None:
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigurationError(f"{where} has the key {key!r}; keys must be strings")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise ConfigurationError(
        f"{where} is a {type(value).__name__}; checkpoint metadata holds only str, int, float, "
        "bool, None, lists and dicts with string keys (convert it, e.g. str(path))"
    )
