"""Shared fixtures: real images and a real (small) dataset, built once per session."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from breedclf.data import write_textures


@pytest.fixture(scope="session")
def textures_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-image's brick/grass/gravel photographs cut into a train/valid/test ImageFolder."""
    return write_textures(tmp_path_factory.mktemp("textures"))


def jpeg_bytes(image: Image.Image, **save: object) -> bytes:
    """Encode ``image`` as JPEG."""
    buf = io.BytesIO()
    image.save(buf, "JPEG", **save)
    return buf.getvalue()


@pytest.fixture(scope="session")
def chelsea() -> Image.Image:
    """A real photograph of a cat."""
    from skimage import data

    return Image.fromarray(np.asarray(data.chelsea()))  # type: ignore[no-untyped-call]
