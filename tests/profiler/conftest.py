"""Real (tiny) training runs with the profiler on, shared by the profiler tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from breedclf.config import ExperimentConfig, validate_config
from breedclf.experiment import Experiment, RunResult, run
from breedclf.models import ImageClassifier
from breedclf.models._factory import MODELS, register_model
from breedclf.preprocessing import PreprocessSpec

SIZE = 16
NET = "profiler_test_net"


def profiler_test_net(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.0
) -> ImageClassifier:
    """Two conv stages with BatchNorm and ReLU: a real classifier at a tiny cost."""
    stages = [
        nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8),
                      nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16),
                      nn.ReLU()),
    ]  # fmt: skip
    return ImageClassifier(
        arch=NET,
        stages=stages,
        num_features=16,
        num_classes=num_classes or 3,
        preprocess=PreprocessSpec(input_size=SIZE, resize_size=SIZE),
        dropout=dropout,
    )


@pytest.fixture(scope="session")
def test_net() -> Iterator[str]:
    """The registered name of :func:`profiler_test_net` (for experiment configs)."""
    with MODELS.scoped():
        register_model(NET)(profiler_test_net)
        yield NET


def write_class_tree(root: Path, classes: int, *, per_split: dict[str, int]) -> Path:
    """``root/{train,valid,test}/class_NNN/*.png``: 16 px images, a colour per class + noise."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(classes, 3))
    for split, count in per_split.items():
        for c in range(classes):
            folder = root / split / f"class_{c:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                noise = rng.integers(-40, 40, size=(SIZE, SIZE, 3))
                pixels = np.clip(colours[c] + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def experiment_config(out: Path, data: dict[str, Any], **sections: Any) -> ExperimentConfig:
    """A run of the test net at 16 px with the profiler sampling every 0.1 s."""
    config: dict[str, Any] = {
        "name": out.name,
        "output_dir": str(out),
        "data": {**data, "image_size": SIZE, "num_workers": 0},
        "model": {"name": NET, "weights": None},
        "training": {"epochs": 2, "batch_size": 8, "evaluate_test": True, "seed": 0},
        "profiler": {"interval": 0.1, "preset": "short_run"},
        **sections,
    }
    return validate_config(ExperimentConfig, config)


@pytest.fixture(scope="session")
def three_class_run(
    test_net: str, textures_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, RunResult]:
    """The textures photographs (3 classes), 2 epochs, debugger on, steps 2-3 traced."""
    out = tmp_path_factory.mktemp("profiled") / "three"
    config = experiment_config(
        out,
        {"dataset": "textures", "root": str(textures_root)},
        debugger={},
        profiler={"interval": 0.1, "preset": "short_run", "trace_steps": [2, 3]},
    )
    return out, run(Experiment(config, progress=False))


@pytest.fixture(scope="session")
def many_class_run(test_net: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """133 generated classes (as dogImages), one epoch."""
    base = tmp_path_factory.mktemp("classes133")
    root = write_class_tree(base / "data", 133, per_split={"train": 2, "valid": 1, "test": 1})
    out = base / "run"
    config = experiment_config(out, {"dataset": "imagefolder", "root": str(root)})
    config = validate_config(
        ExperimentConfig,
        {**config.model_dump(mode="json"), "training": {"epochs": 1, "batch_size": 32,
                                                        "evaluate_test": True}},
    )  # fmt: skip
    torch.manual_seed(0)
    run(Experiment(config, progress=False))
    return out
