"""Optimizers and per-batch learning-rate schedules built from configs."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from breedclf.config import (
    AdamWConfig,
    ConstantSchedulerConfig,
    CosineSchedulerConfig,
    OneCycleSchedulerConfig,
    OptimizerConfig,
    SchedulerConfig,
    SGDConfig,
    StepSchedulerConfig,
)
from breedclf.models import ImageClassifier

__all__ = ["create_optimizer", "create_scheduler"]


def create_optimizer(model: ImageClassifier, config: OptimizerConfig) -> torch.optim.Optimizer:
    """AdamW or SGD over the model's trainable parameter groups (head lr vs backbone lr).

    AdamW uses PyTorch's fused kernel on CPU and CUDA (one kernel for all parameters instead of
    a Python loop over ~200 tensors: 9.7 → 3.7 ms per step for Lite0 on 2 CPU cores).
    """
    groups = model.parameter_groups(
        lr=config.lr, backbone_lr=config.backbone_lr, weight_decay=config.weight_decay
    )
    if not groups:
        raise ValueError("no trainable parameters: the freeze policy froze the whole model")
    if isinstance(config, AdamWConfig):
        device = next(p for g in groups for p in g["params"]).device
        return torch.optim.AdamW(
            groups,
            lr=config.lr,
            betas=config.betas,
            eps=config.eps,
            fused=device.type in {"cpu", "cuda"},
        )
    assert isinstance(config, SGDConfig)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def create_scheduler(
    optimizer: torch.optim.Optimizer,
    config: SchedulerConfig,
    *,
    epochs: int,
    steps_per_epoch: int,
) -> LRScheduler:
    """A scheduler stepped once per optimizer step (after warm-up, if any)."""
    total = max(1, epochs * steps_per_epoch)
    if isinstance(config, OneCycleSchedulerConfig):
        return OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total,
            pct_start=config.pct_start,
            div_factor=config.div_factor,
            final_div_factor=config.final_div_factor,
        )
    warmup = round(config.warmup_epochs * steps_per_epoch)
    start = config.warmup_start_factor
    decay: Callable[[int], float]
    if isinstance(config, CosineSchedulerConfig):
        floor = config.min_lr_factor

        def decay(step: int) -> float:
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    elif isinstance(config, StepSchedulerConfig):
        step_epochs, gamma = config.step_epochs, config.gamma

        def decay(step: int) -> float:
            return float(gamma ** ((step // steps_per_epoch) // step_epochs))

    else:
        assert isinstance(config, ConstantSchedulerConfig)

        def decay(step: int) -> float:
            return 1.0

    def factor(step: int) -> float:
        if step < warmup:
            return start + (1 - start) * step / warmup
        return decay(step)

    return LambdaLR(optimizer, factor)
