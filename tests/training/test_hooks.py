from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from breedclf.config import DataConfig, TrainingConfig
from breedclf.data import Batch, ImageDataset, create_dataloader, create_dataset
from breedclf.models import create_model
from breedclf.preprocessing import create_transform
from breedclf.training import Callback, EpochResult, StepOutput, Trainer


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.grads_present: list[bool] = []
        self.weights_before_step: list[torch.Tensor] = []
        self.weights_after_step: list[torch.Tensor] = []

    def on_fit_start(self, trainer: Trainer) -> None:
        self.calls.append("fit_start")

    def on_fit_end(self, trainer: Trainer) -> None:
        self.calls.append("fit_end")

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.calls.append(f"epoch_start:{epoch}")

    def on_train_batch_start(self, trainer: Trainer, batch: Batch, batch_idx: int) -> None:
        self.calls.append(f"train_batch_start:{batch_idx}")

    def on_after_backward(self, trainer: Trainer, step: StepOutput) -> None:
        self.calls.append(f"after_backward:{step.batch_idx}")
        head = trainer.model.head.weight
        self.grads_present.append(head.grad is not None and bool(head.grad.abs().sum() > 0))
        self.weights_before_step.append(head.detach().clone())

    def on_train_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        self.calls.append(f"train_batch_end:{step.batch_idx}:step{step.global_step}")
        self.weights_after_step.append(trainer.model.head.weight.detach().clone())

    def on_validation_start(self, trainer: Trainer) -> None:
        self.calls.append("validation_start")

    def on_validation_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        self.calls.append(f"validation_batch_end:{step.batch_idx}")

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.calls.append(f"validation_end:{metrics['count']}")

    def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:
        self.calls.append(f"epoch_end:{result.epoch}")


def _loaders(root: Path, size: int = 32) -> tuple[Any, Any, Any]:
    splits = create_dataset(DataConfig(dataset="textures", root=root)).load_splits()
    model = create_model("efficientnet_lite0", num_classes=3, weights=None)
    model.preprocess = model.preprocess.with_input_size(size)

    def loader(samples: list[Any], train: bool) -> Any:
        ds = ImageDataset(samples, create_transform(model.preprocess, train=train))
        return create_dataloader(
            ds, batch_size=4, shuffle=train, seed=0, num_workers=0, pin_memory=False
        )

    return model, loader(splits.train[:8], True), loader(splits.valid[:3], False)


def test_exact_hook_order_one_epoch_two_batches(textures_root: Path) -> None:
    model, train, valid = _loaders(textures_root)
    recorder = Recorder()
    trainer = Trainer(model, training=TrainingConfig(epochs=1, device="cpu"), callbacks=[recorder])
    trainer.fit(train, valid)
    assert recorder.calls == [
        "fit_start",
        "epoch_start:1",
        "train_batch_start:0",
        "after_backward:0",
        "train_batch_end:0:step1",
        "train_batch_start:1",
        "after_backward:1",
        "train_batch_end:1:step2",
        "validation_start",
        "validation_batch_end:0",
        "validation_end:3",
        "epoch_end:1",
        "fit_end",
    ]
    # Gradients exist after backward, and the optimizer has not stepped yet at that point.
    assert recorder.grads_present == [True, True]
    assert torch.equal(recorder.weights_before_step[1], recorder.weights_after_step[0])
    assert not torch.equal(recorder.weights_before_step[0], recorder.weights_after_step[0])


def test_exception_hook_runs_and_error_propagates(textures_root: Path) -> None:
    model, train, valid = _loaders(textures_root)

    class Boom(Callback):
        def on_train_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
            raise RuntimeError("boom")

    recorder = Recorder()
    seen: list[BaseException] = []

    class Catch(Callback):
        order = 5

        def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
            seen.append(exception)

    trainer = Trainer(
        model,
        training=TrainingConfig(epochs=1, device="cpu"),
        callbacks=[recorder, Boom(), Catch()],
    )
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(train, valid)
    assert len(seen) == 1 and str(seen[0]) == "boom"
    assert "fit_end" not in recorder.calls
