"""Built-in callbacks: early stopping and model selection by the monitored validation metric."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from breedclf.config import TrainingConfig
from breedclf.training import Callback, Checkpointer, EarlyStopping, EpochResult, Trainer
from tests.training.conftest import random_batches, small_cnn


def _trainer(*callbacks: Callback, epochs: int = 1) -> Trainer:
    return Trainer(
        small_cnn(), training=TrainingConfig(epochs=epochs, device="cpu"), callbacks=callbacks
    )


@pytest.mark.parametrize(
    ("monitor", "values", "min_delta", "stops"),
    [
        pytest.param(
            "valid_loss", [1.0, 0.9, 0.95, 0.91, 0.8], 0.0, [0, 0, 0, 1, 1], id="loss-patience-2"
        ),
        pytest.param("valid_acc", [0.5, 0.6, 0.6, 0.7, 0.65], 0.0, [0, 0, 0, 0, 0], id="acc"),
        pytest.param("valid_acc", [0.5, 0.505, 0.508], 0.01, [0, 0, 1], id="acc-min-delta"),
    ],
)
def test_early_stopping_counts_epochs_without_improvement(
    monitor: str, values: list[float], min_delta: float, stops: list[int]
) -> None:
    stopper = EarlyStopping(monitor=monitor, patience=2, min_delta=min_delta)  # type: ignore[arg-type]
    trainer = _trainer(stopper)
    seen = []
    for value in values:
        key = "loss" if monitor == "valid_loss" else "acc"
        stopper.on_validation_end(trainer, {key: value})
        seen.append(int(trainer.should_stop))
    assert seen == stops


def test_early_stopping_ends_the_fit_after_patience_runs_out() -> None:
    # No epoch can improve by 100 after the first, so epochs 2 and 3 exhaust a patience of 2.
    stopper = EarlyStopping(monitor="valid_loss", patience=2, min_delta=100.0)
    batches = random_batches(2)
    history = _trainer(stopper, epochs=10).fit(batches, batches)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert stopper.wait == 2


def test_valid_loss_monitor_selects_the_epoch_with_the_lowest_validation_loss(
    tmp_path: Path,
) -> None:
    weights: dict[int, dict[str, torch.Tensor]] = {}

    class Snapshot(Callback):
        def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:
            state = trainer.model.state_dict()
            weights[result.epoch] = {k: v.detach().clone() for k, v in state.items()}

    checkpointer = Checkpointer(tmp_path, monitor="valid_loss")
    history = _trainer(Snapshot(), checkpointer, epochs=4).fit(
        random_batches(3), random_batches(2, seed=1)
    )
    losses = {h["epoch"]: h["valid"]["loss"] for h in history}
    best = min(losses, key=lambda epoch: losses[epoch])
    assert checkpointer.best_epoch == best
    assert checkpointer.best_value == losses[best]
    saved = load_file(str(checkpointer.best_path))
    assert saved.keys() == weights[best].keys()
    assert all(torch.equal(saved[k], v) for k, v in weights[best].items())
    assert len(set(losses.values())) == len(losses)  # no tie made the choice trivial
