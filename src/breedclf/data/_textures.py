"""A small real dataset that installs with the package: scikit-image's texture photographs.

``skimage.data`` ships three 512×512 grayscale photographs of brick, grass and gravel. This
dataset cuts them into patches of varied size, writing a standard ImageFolder tree. The three
splits come from disjoint horizontal bands of each photograph (train: rows 0–319, valid: 320–415,
test: 416–511), so no pixel of a held-out patch was seen in training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from breedclf.data._datasets import ImageFolderDataset, register_dataset
from breedclf.errors import MissingDependencyError

__all__ = ["TexturesDataset", "write_textures"]

CLASSES = ("brick", "grass", "gravel")
_BANDS = {"train": (0, 320, 60), "valid": (320, 416, 15), "test": (416, 512, 15)}
_VERSION = 1


def write_textures(root: Path, *, seed: int = 0) -> Path:
    """Write the textures ImageFolder tree under ``root`` (skipped if already complete).

    Raises:
        MissingDependencyError: scikit-image is not installed.
    """
    marker = root / "textures.json"
    if marker.is_file() and json.loads(marker.read_text()).get("version") == _VERSION:
        return root
    try:
        from skimage import data as skdata
    except ImportError:
        raise MissingDependencyError("scikit-image", "demo", "The textures dataset") from None
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        photo = np.asarray(getattr(skdata, name)())
        for split, (top, bottom, count) in _BANDS.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                size = int(rng.integers(64, min(128, bottom - top) + 1))
                y = int(rng.integers(top, bottom - size + 1))
                x = int(rng.integers(0, photo.shape[1] - size + 1))
                patch = Image.fromarray(photo[y : y + size, x : x + size])
                patch.save(folder / f"{name}_{split}_{i:03d}.png")
    marker.write_text(json.dumps({"version": _VERSION, "classes": list(CLASSES)}))
    return root


@register_dataset("textures")
class TexturesDataset(ImageFolderDataset):
    """brick / grass / gravel patches from scikit-image (offline; needs ``breedclf[demo]``).

    ``data.root`` is where the tree is written (default ``~/.cache/breedclf/textures``).
    """

    name: ClassVar[str] = "textures"

    def resolve_root(self) -> Path:
        """Materialise the tree on first use."""
        root = self.config.root or Path.home() / ".cache" / "breedclf" / "textures"
        return write_textures(Path(root).expanduser())
