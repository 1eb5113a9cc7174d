"""Optimizers and learning-rate schedules: the values PyTorch sees equal the documented formulas."""

from __future__ import annotations

import math

import pytest
import torch

from breedclf.config import (
    ConstantSchedulerConfig,
    CosineSchedulerConfig,
    OneCycleSchedulerConfig,
    SchedulerConfig,
    SGDConfig,
    StepSchedulerConfig,
    TrainingConfig,
)
from breedclf.training import Trainer, create_optimizer, create_scheduler
from tests.training.conftest import random_batches, small_cnn

HEAD_LR, BACKBONE_LR = 1e-2, 1e-3


def _lrs(config: SchedulerConfig, *, epochs: int, steps_per_epoch: int) -> list[list[float]]:
    """Head and backbone learning rate before each of the run's optimizer steps."""
    model = small_cnn()
    optimizer = torch.optim.SGD(
        model.parameter_groups(lr=HEAD_LR, backbone_lr=BACKBONE_LR, weight_decay=0.0), lr=HEAD_LR
    )
    scheduler = create_scheduler(optimizer, config, epochs=epochs, steps_per_epoch=steps_per_epoch)
    names = [g["name"] for g in optimizer.param_groups]
    head, backbone = names.index("head"), names.index("backbone")
    out = []
    for _ in range(epochs * steps_per_epoch):
        groups = optimizer.param_groups
        out.append([groups[head]["lr"], groups[backbone]["lr"]])
        optimizer.step()
        scheduler.step()
    return out


def _check(lrs: list[list[float]], factors: list[float]) -> None:
    assert len(lrs) == len(factors)
    for step, ((head, backbone), factor) in enumerate(zip(lrs, factors, strict=True)):
        assert head == pytest.approx(HEAD_LR * factor, rel=1e-9, abs=1e-15), step
        assert backbone == pytest.approx(BACKBONE_LR * factor, rel=1e-9, abs=1e-15), step


def test_cosine_with_warmup() -> None:
    # 4 epochs × 5 steps; 1 warm-up epoch from 0.1 × lr, then cosine down to 0.1 × lr.
    config = CosineSchedulerConfig(warmup_epochs=1, warmup_start_factor=0.1, min_lr_factor=0.1)
    total, warmup = 20, 5

    def factor(s: int) -> float:
        if s < warmup:
            return 0.1 + 0.9 * s / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))

    lrs = _lrs(config, epochs=4, steps_per_epoch=5)
    _check(lrs, [factor(s) for s in range(total)])
    assert lrs[warmup][0] == pytest.approx(HEAD_LR)  # the peak, right after warm-up


def test_step_decay() -> None:
    # gamma 0.5 every 2 epochs of 3 steps.
    config = StepSchedulerConfig(step_epochs=2, gamma=0.5)
    lrs = _lrs(config, epochs=6, steps_per_epoch=3)
    _check(lrs, [0.5 ** ((s // 3) // 2) for s in range(18)])


def test_constant_with_warmup() -> None:
    config = ConstantSchedulerConfig(warmup_epochs=0.5, warmup_start_factor=0.2)
    lrs = _lrs(config, epochs=2, steps_per_epoch=4)  # 2 warm-up steps
    _check(lrs, [0.2, 0.6, 1, 1, 1, 1, 1, 1])


def test_onecycle() -> None:
    config = OneCycleSchedulerConfig(pct_start=0.25, div_factor=10.0, final_div_factor=100.0)
    total = 21
    peak = 0.25 * total - 1  # PyTorch's phase boundary (a float step)

    def anneal(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))

    def factor(s: int) -> float:
        if s <= peak:
            return anneal(1 / 10, 1.0, s / peak)
        return anneal(1.0, 1 / 10 / 100, (s - peak) / (total - 1 - peak))

    lrs = _lrs(config, epochs=3, steps_per_epoch=7)
    _check(lrs, [factor(s) for s in range(total)])
    assert lrs[0][0] == pytest.approx(HEAD_LR / 10)
    assert lrs[-1][0] == pytest.approx(HEAD_LR / 10 / 100)


def test_sgd_settings_reach_the_optimizer() -> None:
    config = SGDConfig(lr=0.05, backbone_lr=0.01, momentum=0.8, nesterov=False, weight_decay=1e-3)
    optimizer = create_optimizer(small_cnn(), config)
    assert isinstance(optimizer, torch.optim.SGD)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert {g["momentum"] for g in groups.values()} == {0.8}
    assert {g["nesterov"] for g in groups.values()} == {False}
    assert groups["head"]["lr"] == 0.05
    assert groups["backbone"]["lr"] == 0.01
    assert groups["head"]["weight_decay"] == 1e-3
    assert groups["head_no_decay"]["weight_decay"] == 0.0
    assert {g["nesterov"] for g in create_optimizer(small_cnn(), SGDConfig()).param_groups} == {
        True
    }


def test_sgd_trains() -> None:
    batches = random_batches(3)
    trainer = Trainer(
        small_cnn(),
        training=TrainingConfig(epochs=20, device="cpu"),
        optimizer=SGDConfig(lr=0.05, momentum=0.9),
        scheduler=ConstantSchedulerConfig(),
    )
    before = trainer.evaluate(batches, full=False)
    trainer.fit(batches)
    after = trainer.evaluate(batches, full=False)
    # It memorises the 12 images it saw (seeded: ~1.1 → ~0.03).
    assert after["acc"] == 1.0
    assert after["loss"] < 0.2 * before["loss"]
