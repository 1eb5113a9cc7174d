"""Small real models and data for training-loop tests (fast on 2 CPU cores)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from breedclf.config import DataConfig, ExperimentConfig, dump_config, override, validate_config
from breedclf.data import Batch, ImageDataset, create_dataloader, create_dataset
from breedclf.models import ImageClassifier
from breedclf.preprocessing import PreprocessSpec, create_transform

SIZE = 32


def small_cnn(num_classes: int = 3, *, seed: int = 0) -> ImageClassifier:
    """A two-stage conv net with BatchNorm: the ImageClassifier shape at a tiny cost."""
    torch.manual_seed(seed)

    def stage(cin: int, cout: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )

    return ImageClassifier(
        arch="small_cnn",
        stages=[stage(3, 8), stage(8, 16)],
        num_features=16,
        num_classes=num_classes,
        preprocess=PreprocessSpec(input_size=SIZE, resize_size=SIZE),
    )


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The model's first convolution."""
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def random_batches(count: int, *, batch_size: int = 4, seed: int = 0) -> list[Batch]:
    """``count`` batches of normalised noise with labels cycling through 3 classes."""
    gen = torch.Generator().manual_seed(seed)
    return [
        Batch(
            torch.randn(batch_size, 3, SIZE, SIZE, generator=gen),
            torch.arange(i * batch_size, (i + 1) * batch_size) % 3,
        )
        for i in range(count)
    ]


LoaderFactory = Callable[..., tuple[DataLoader[Batch], DataLoader[Batch]]]


@pytest.fixture
def texture_loaders(textures_root: Path) -> LoaderFactory:
    """Build (train, valid) loaders over the first images of the real textures splits."""
    splits = create_dataset(DataConfig(dataset="textures", root=textures_root)).load_splits()

    def build(
        model: ImageClassifier, *, n_train: int = 8, n_valid: int = 6, batch_size: int = 4
    ) -> tuple[DataLoader[Batch], DataLoader[Batch]]:
        def loader(samples: list[Any], train: bool) -> DataLoader[Batch]:
            ds = ImageDataset(samples, create_transform(model.preprocess, train=train))
            return create_dataloader(
                ds, batch_size=batch_size, shuffle=train, seed=0, num_workers=0, pin_memory=False
            )

        # Evenly spaced picks cover every class (the splits are sorted by class).
        train = splits.train[:: max(1, len(splits.train) // n_train)][:n_train]
        valid = splits.valid[:: max(1, len(splits.valid) // n_valid)][:n_valid]
        return loader(train, True), loader(valid, False)

    return build


def textures_experiment(root: Path, out: Path, **changes: Any) -> Path:
    """Write a 3-epoch Lite0 experiment on the textures data (``changes``: dotted overrides).

    Returns the YAML file, next to ``out`` (the run's output directory).
    """
    config = validate_config(
        ExperimentConfig,
        {
            "name": "textures-test",
            "output_dir": str(out),
            "data": {"dataset": "textures", "root": str(root), "image_size": 32, "num_workers": 0},
            "model": {"name": "efficientnet_lite0", "weights": "DEFAULT"},
            "optimizer": {"name": "adamw", "lr": 2e-3, "backbone_lr": 5e-4},
            "training": {"epochs": 3, "batch_size": 16, "seed": 7, "evaluate_test": True},
        },
    )
    path = out.with_suffix(".yaml")
    dump_config(override(config, changes), path)
    return path


def epoch_records(out: Path) -> list[dict[str, Any]]:
    """A run's epoch records from ``metrics.jsonl``, without the timings (which always differ)."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["event"] == "epoch"]
    for record in epochs:
        record.pop("seconds")
        record.pop("images_per_second")
    return epochs
