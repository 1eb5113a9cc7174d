"""The training loop's contract: steps, losses, learning rates, counters and checkpoints."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from breedclf.config import TrainingConfig
from breedclf.errors import CheckpointError, ConfigurationError
from breedclf.models import create_model
from breedclf.training import Trainer, read_checkpoint, read_checkpoint_metadata
from tests.training.conftest import LoaderFactory, random_batches, small_cnn

CPU = TrainingConfig(epochs=1, device="cpu")


def test_a_lone_last_training_image_does_not_crash_batchnorm(
    texture_loaders: LoaderFactory,
) -> None:
    # At 32 px, EfficientNet-Lite0's last feature map is 1×1: BatchNorm cannot train on a batch
    # of one image there ("Expected more than 1 value per channel").
    model = create_model("efficientnet_lite0", num_classes=3, weights=None)
    model.preprocess = model.preprocess.with_input_size(32)
    train, valid = texture_loaders(model, n_train=9, n_valid=5, batch_size=4)
    history = Trainer(model, training=CPU).fit(train, valid)
    assert history[0]["train"]["count"] == 8
    assert history[0]["valid"]["count"] == 5  # evaluation keeps its lone last image


def test_checkpoint_carries_caller_metadata(tmp_path: Path) -> None:
    metadata: dict[str, Any] = {
        "config_sha256": "3f2a",
        "nested": {"values": [1, 2.5, None, True], "name": "x"},
    }
    trainer = Trainer(small_cnn(), training=CPU, checkpoint_metadata=metadata)
    metadata["config_sha256"] = "changed later"  # the trainer keeps its own copy
    path = trainer.save_checkpoint(tmp_path / "last.ckpt")
    expected = {"config_sha256": "3f2a", "nested": {"values": [1, 2.5, None, True], "name": "x"}}
    assert read_checkpoint_metadata(path) == expected
    assert trainer.state_dict()["metadata"] == expected
    plain = Trainer(small_cnn(), training=CPU).save_checkpoint(tmp_path / "plain.ckpt")
    assert read_checkpoint_metadata(plain) == {}


def test_checkpoint_metadata_must_load_back_without_pickle(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"checkpoint_metadata\['dir'\] is a PosixPath"):
        Trainer(small_cnn(), training=CPU, checkpoint_metadata={"dir": tmp_path})


def test_reading_metadata_of_bad_files_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint_metadata(tmp_path / "missing.ckpt")
    (tmp_path / "garbage.ckpt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="is unreadable"):
        read_checkpoint_metadata(tmp_path / "garbage.ckpt")
    torch.save(torch.zeros(2), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="not a breedclf training checkpoint"):
        read_checkpoint_metadata(tmp_path / "tensor.pt")


def _draws() -> tuple[list[float], list[float], list[float]]:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_checkpoint_is_read_onto_the_cpu_and_restores_every_rng(tmp_path: Path) -> None:
    trainer = Trainer(small_cnn(), training=CPU)
    trainer.fit(random_batches(2))
    path = trainer.save_checkpoint(tmp_path / "last.ckpt")
    expected = _draws()

    state = read_checkpoint(path)
    tensors: list[torch.Tensor] = []

    def collect(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensors.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list | tuple):
            for item in value:
                collect(item)

    collect(state)
    assert tensors and all(t.device.type == "cpu" for t in tensors)

    other = Trainer(small_cnn(seed=1), training=CPU)
    other.load_checkpoint(path)
    assert _draws() == expected
    assert other.state.global_step == 2
    assert torch.equal(other.model.head.weight, trainer.model.head.weight)


def test_a_checkpoint_without_loss_scaling_resumes_with_it(tmp_path: Path) -> None:
    """A CPU (or bf16) checkpoint resumed by an fp16 run: the scaler starts afresh."""
    path = Trainer(small_cnn(), training=CPU).save_checkpoint(tmp_path / "last.ckpt")
    resumed = Trainer(small_cnn(), training=CPU)
    resumed.scaler = torch.amp.GradScaler("cpu")  # stands in for CUDA fp16 (CUDA-only here)
    resumed.load_checkpoint(path)
    resumed.fit(random_batches(1))
    assert resumed.scaler.get_scale() > 0
