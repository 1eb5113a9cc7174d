"""fp16 loss scaling: a step the scaler skips (its scaled gradients overflowed, as it expects
while searching for the scale) is not an exploding tensor. Runs on CPU with a real GradScaler."""

from __future__ import annotations

from pathlib import Path

import torch

from breedclf.config import ConstantSchedulerConfig, SGDConfig, TrainingConfig
from breedclf.debugger import (
    Debugger,
    exploding_tensor,
    load_trial,
    vanishing_gradient,
    weight_update_ratio,
)
from breedclf.training import Callback, GradientInfo, StepOutput, Trainer

from .helpers import batches, net


class FoundInf(Callback):
    """Records the scaler's overflow flag at every step."""

    def __init__(self) -> None:
        self.flags: list[bool] = []

    def on_before_optimizer_step(
        self, trainer: Trainer, step: StepOutput, gradients: GradientInfo
    ) -> None:
        assert gradients.found_inf is not None
        self.flags.append(bool(gradients.found_inf.item()))


def test_steps_the_loss_scaler_skips_are_not_exploding_gradients(tmp_path: Path) -> None:
    debugger = Debugger(
        [exploding_tensor(), vanishing_gradient(), weight_update_ratio()], save_interval=1
    )
    spy = FoundInf()
    trainer = Trainer(
        net(norm=False),
        training=TrainingConfig(epochs=1, device="cpu", amp="off", channels_last="off", seed=0),
        optimizer=SGDConfig(lr=0.05, momentum=0.9, nesterov=False, weight_decay=0.0),
        scheduler=ConstantSchedulerConfig(),
        callbacks=[debugger, spy],
        run_dir=tmp_path,
    )
    # A first scale so large (float32's max) that the scaled gradients overflow, as the
    # scaler's first guesses do on GPUs (gradients above 1 here: inputs x10, no BatchNorm); one
    # back-off brings it to a working scale (256).
    top = torch.finfo(torch.float32).max
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=top, backoff_factor=2.0**-120)
    trainer.fit(batches(6, scale=10.0))

    assert spy.flags == [True, False, False, False, False, False]
    # Without the skip: NaN gradients, and an update of 0 (ratio below small_threshold).
    assert debugger.statuses == {"exploding_tensor": "NoIssuesFound",
                                 "vanishing_gradient": "NoIssuesFound",
                                 "weight_update_ratio": "NoIssuesFound"}  # fmt: skip
    assert debugger.scaler_skipped == [1]
    trial = load_trial(tmp_path)
    model_tensors = [
        *trial.tensor_names(collection="gradients"),
        *trial.tensor_names(collection="weights"),
    ]
    assert model_tensors and trial.steps() == [1, 2, 3, 4, 5, 6]
    first = trial.record(1, "train").tensors
    assert "loss" in first and not any(name in first for name in model_tensors)  # loss only
    assert all(model_tensors[0] in trial.record(step, "train").tensors for step in range(2, 7))
