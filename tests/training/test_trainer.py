"""The training loop's contract: steps, losses, learning rates, counters and checkpoints."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from breedclf.config import (
    AdamWConfig,
    ConstantSchedulerConfig,
    CosineSchedulerConfig,
    OptimizerConfig,
    SGDConfig,
    TrainingConfig,
)
from breedclf.data import Batch
from breedclf.errors import CheckpointError, ConfigurationError
from breedclf.models import create_model
from breedclf.training import (
    Callback,
    GradientInfo,
    MetricsLogger,
    StepOutput,
    Trainer,
    read_checkpoint,
    read_checkpoint_metadata,
)
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


class Gradients(Callback):
    def __init__(self) -> None:
        self.infos: list[GradientInfo] = []
        self.norms_after_backward: list[float] = []
        self.norms_before_step: list[float] = []

    def on_after_backward(self, trainer: Trainer, step: StepOutput) -> None:
        self.norms_after_backward.append(_grad_norm(trainer))

    def on_before_optimizer_step(
        self, trainer: Trainer, step: StepOutput, gradients: GradientInfo
    ) -> None:
        self.infos.append(gradients)
        self.norms_before_step.append(_grad_norm(trainer))


def _grad_norm(trainer: Trainer) -> float:
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))


@pytest.mark.parametrize(
    "optimizer",
    [pytest.param(SGDConfig(lr=0.1), id="sgd"), pytest.param(AdamWConfig(lr=0.1), id="adamw")],
)
def test_scheduler_does_not_advance_when_the_loss_scaler_skips_the_step(
    optimizer: OptimizerConfig,
) -> None:
    spy = Gradients()
    trainer = Trainer(
        small_cnn(),
        training=CPU,
        optimizer=optimizer,
        scheduler=CosineSchedulerConfig(),
        callbacks=[spy],
    )
    # fp16 loss scaling is CUDA-only in breedclf; PyTorch's scaler also runs on CPU, which
    # lets the skip logic be checked here (tests/training/test_cuda.py does it under fp16).
    trainer.scaler = torch.amp.GradScaler("cpu")
    weights = trainer.model.head.weight.detach().clone()
    nan = [Batch(torch.full((4, 3, 32, 32), math.nan), torch.tensor([0, 1, 2, 0]))] * 2
    trainer.fit(nan)
    assert trainer.scheduler is not None
    assert trainer.scheduler.last_epoch == 0  # the schedule did not move
    assert trainer.optimizer.param_groups[0]["lr"] == 0.1
    assert torch.equal(trainer.model.head.weight, weights)  # nor did the weights
    assert [info.found_inf is not None and bool(info.found_inf) for info in spy.infos] == [
        True,
        True,
    ]
    assert trainer.state.global_step == 2  # global_step counts batches, skipped or not


def test_scheduler_advances_with_every_optimizer_step() -> None:
    trainer = Trainer(small_cnn(), training=CPU, scheduler=CosineSchedulerConfig())
    trainer.scaler = torch.amp.GradScaler("cpu")
    trainer.fit(random_batches(3))
    assert trainer.scheduler is not None
    assert trainer.scheduler.last_epoch == 3


def test_every_parameter_group_learning_rate_is_logged(tmp_path: Path) -> None:
    logger = MetricsLogger(tmp_path / "metrics.jsonl")
    history = Trainer(
        small_cnn(),
        training=CPU,
        optimizer=AdamWConfig(lr=1e-2, backbone_lr=1e-4),
        scheduler=ConstantSchedulerConfig(),
        callbacks=[logger],
    ).fit(random_batches(2))
    expected = {"head": 1e-2, "head_no_decay": 1e-2, "backbone": 1e-4, "backbone_no_decay": 1e-4}
    assert history[0]["lr"] == 1e-2
    assert history[0]["lrs"] == expected
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert record["lr"] == 1e-2
    assert record["lrs"] == expected


class Losses(Callback):
    def __init__(self) -> None:
        self.train: list[tuple[float, float, float]] = []
        self.valid_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.valid_steps: list[tuple[int, int]] = []

    def on_train_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        by_hand = F.cross_entropy(step.outputs.detach().float(), step.targets)
        self.train.append((float(step.loss.detach()), float(step.loss_unsmoothed), float(by_hand)))

    def on_validation_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        self.valid_outputs.append((step.outputs.float(), step.targets))
        self.valid_steps.append((step.validation_step, step.global_step))
        assert torch.equal(step.loss, step.loss_unsmoothed)


def test_label_smoothing_smooths_training_loss_only() -> None:
    losses = Losses()
    batches = random_batches(2)
    history = Trainer(
        small_cnn(),
        training=TrainingConfig(epochs=1, device="cpu", label_smoothing=0.3),
        callbacks=[losses],
    ).fit(batches, batches)
    for smoothed, unsmoothed, by_hand in losses.train:
        assert unsmoothed == pytest.approx(by_hand, rel=1e-6)
        assert smoothed != pytest.approx(unsmoothed, rel=1e-3)
    train = history[0]["train"]
    assert train["loss_unsmoothed"] == pytest.approx(sum(u for _, u, _ in losses.train) / 2)
    assert train["loss"] != pytest.approx(train["loss_unsmoothed"], rel=1e-3)
    outputs = torch.cat([o for o, _ in losses.valid_outputs])
    targets = torch.cat([t for _, t in losses.valid_outputs])
    assert history[0]["valid"]["loss"] == pytest.approx(float(F.cross_entropy(outputs, targets)))


def test_without_label_smoothing_both_training_losses_agree() -> None:
    losses = Losses()
    history = Trainer(small_cnn(), training=CPU, callbacks=[losses]).fit(random_batches(2))
    assert all(smoothed == unsmoothed for smoothed, unsmoothed, _ in losses.train)
    assert history[0]["train"]["loss"] == history[0]["train"]["loss_unsmoothed"]


def test_validation_batches_have_their_own_step_counter() -> None:
    losses = Losses()
    trainer = Trainer(
        small_cnn(), training=TrainingConfig(epochs=2, device="cpu"), callbacks=[losses]
    )
    trainer.fit(random_batches(2), random_batches(3, seed=1))
    assert losses.valid_steps == [(1, 2), (2, 2), (3, 2), (4, 4), (5, 4), (6, 4)]
    assert trainer.state.validation_step == 6
    assert trainer.state_dict()["trainer"]["validation_step"] == 6
    trainer.evaluate(random_batches(1))  # a one-off evaluation is not part of the fit
    assert trainer.state.validation_step == 6


def test_run_dir_is_visible_to_callbacks(tmp_path: Path) -> None:
    seen: list[Path | None] = []

    class Look(Callback):
        def on_fit_start(self, trainer: Trainer) -> None:
            seen.append(trainer.run_dir)

    Trainer(small_cnn(), training=CPU, run_dir=str(tmp_path), callbacks=[Look()]).fit(
        random_batches(1)
    )
    assert seen == [tmp_path]
    assert Trainer(small_cnn(), training=CPU).run_dir is None


def test_gradient_clipping_bounds_the_norm_the_optimizer_sees() -> None:
    spy = Gradients()
    Trainer(
        small_cnn(),
        training=TrainingConfig(epochs=1, device="cpu", grad_clip_norm=1e-3),
        callbacks=[spy],
    ).fit(random_batches(3))
    assert len(spy.infos) == 3
    for info, before, after in zip(
        spy.infos, spy.norms_after_backward, spy.norms_before_step, strict=True
    ):
        assert info.found_inf is None
        assert info.grad_norm is not None
        assert float(info.grad_norm) == pytest.approx(before, rel=1e-5)  # the unclipped norm
        assert before > 1e-3
        assert after <= 1e-3 * (1 + 1e-4)


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
