"""Tiny real studies on the texture photographs (32 px, pretrained Lite0, 1-3 epochs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def tiny_experiment(root: Path, **training: Any) -> dict[str, Any]:
    """An experiment mapping whose trials take seconds: Lite0 (offline ImageNet weights), 32 px.

    The backbone is frozen and augmentation off unless a study tunes them, so most trials train
    the head on cached features.
    """
    return {
        "name": "tiny",
        "output_dir": "unused",
        "data": {
            "dataset": "textures",
            "root": str(root),
            "image_size": 32,
            "num_workers": 0,
            "augment": {"scale": [1.0, 1.0], "hflip": False},
        },
        "model": {
            "name": "efficientnet_lite0",
            "weights": "DEFAULT",
            "freeze": {"policy": "backbone"},
        },
        "optimizer": {"name": "adamw", "lr": 1e-3},
        "training": {"epochs": 2, "batch_size": 32, "seed": 3, **training},
    }


def write_study(path: Path, **fields: Any) -> Path:
    """Write a study file (YAML) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(fields, sort_keys=False), encoding="utf-8")
    return path
