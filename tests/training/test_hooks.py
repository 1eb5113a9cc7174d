from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from breedclf.config import DataConfig, TrainingConfig
from breedclf.data import Batch, ImageDataset, create_dataloader, create_dataset
from breedclf.errors import CheckpointError
from breedclf.models import create_model
from breedclf.preprocessing import create_transform
from breedclf.training import Callback, EpochResult, GradientInfo, StepOutput, Trainer
from tests.training.conftest import random_batches, small_cnn


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.grads_present: list[bool] = []
        self.weights_before_step: list[torch.Tensor] = []
        self.weights_after_step: list[torch.Tensor] = []
        self.gradients: list[GradientInfo] = []

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

    def on_before_optimizer_step(
        self, trainer: Trainer, step: StepOutput, gradients: GradientInfo
    ) -> None:
        self.calls.append(f"before_optimizer_step:{step.batch_idx}")
        self.gradients.append(gradients)

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

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        self.calls.append(f"exception:{type(exception).__name__}")

    def teardown(self, trainer: Trainer) -> None:
        self.calls.append("teardown")


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
        "before_optimizer_step:0",
        "train_batch_end:0:step1",
        "train_batch_start:1",
        "after_backward:1",
        "before_optimizer_step:1",
        "train_batch_end:1:step2",
        "validation_start",
        "validation_batch_end:0",
        "validation_end:3",
        "epoch_end:1",
        "fit_end",
        "teardown",
    ]
    # Gradients exist after backward, and the optimizer has not stepped yet at that point.
    assert recorder.grads_present == [True, True]
    assert torch.equal(recorder.weights_before_step[1], recorder.weights_after_step[0])
    assert not torch.equal(recorder.weights_before_step[0], recorder.weights_after_step[0])
    # fp32 on CPU: no loss scaler, no clipping configured.
    assert all(g.found_inf is None and g.grad_norm is None for g in recorder.gradients)


def test_every_hook_is_dispatched() -> None:
    """A hook added to Callback but never emitted by the trainer fails here."""
    hooks = {name for name in vars(Callback) if name.startswith("on_") or name == "teardown"}
    seen: set[str] = set()

    class Spy(Callback):
        pass

    for name in hooks:
        setattr(Spy, name, lambda self, *args, _name=name: seen.add(_name))
    batches = random_batches(2)
    Trainer(small_cnn(), training=TrainingConfig(epochs=1, device="cpu"), callbacks=[Spy()]).fit(
        batches, batches
    )
    assert seen == hooks - {"on_exception"}


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
    assert recorder.calls[-2:] == ["exception:RuntimeError", "teardown"]


class Raise(Callback):
    """Raises ``error`` from the hook named ``where``."""

    def __init__(self, where: str, error: BaseException) -> None:
        self.where = where
        self.error = error

    def on_fit_start(self, trainer: Trainer) -> None:
        self._maybe("on_fit_start")

    def on_fit_end(self, trainer: Trainer) -> None:
        self._maybe("on_fit_end")

    def on_train_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        self._maybe("on_train_batch_end")

    def _maybe(self, hook: str) -> None:
        if hook == self.where:
            raise self.error


@pytest.mark.parametrize(
    ("where", "error"),
    [
        pytest.param("on_fit_start", RuntimeError("boom"), id="fit_start"),
        pytest.param("on_fit_end", RuntimeError("boom"), id="fit_end"),
        pytest.param("on_train_batch_end", KeyboardInterrupt(), id="interrupt"),
    ],
)
def test_exception_and_teardown_cover_the_whole_fit(where: str, error: BaseException) -> None:
    recorder = Recorder()
    trainer = Trainer(
        small_cnn(),
        training=TrainingConfig(epochs=1, device="cpu"),
        callbacks=[recorder, Raise(where, error)],
    )
    with pytest.raises(type(error)):
        trainer.fit(random_batches(2))
    assert recorder.calls[-2:] == [f"exception:{type(error).__name__}", "teardown"]
    assert recorder.calls.count("teardown") == 1


def test_unreadable_resume_checkpoint_reaches_on_exception(tmp_path: Path) -> None:
    bad = tmp_path / "last.ckpt"
    bad.write_bytes(b"not a checkpoint")
    recorder = Recorder()
    trainer = Trainer(
        small_cnn(), training=TrainingConfig(epochs=1, device="cpu"), callbacks=[recorder]
    )
    with pytest.raises(CheckpointError, match="is unreadable"):
        trainer.fit(random_batches(2), resume_from=bad)
    assert recorder.calls == ["exception:CheckpointError", "teardown"]


def test_failing_cleanup_hooks_neither_hide_the_error_nor_skip_the_others() -> None:
    class Sloppy(Callback):
        def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
            raise ValueError("broken on_exception")

        def teardown(self, trainer: Trainer) -> None:
            raise ValueError("broken teardown")

    recorder = Recorder()
    trainer = Trainer(
        small_cnn(),
        training=TrainingConfig(epochs=1, device="cpu"),
        callbacks=[Sloppy(), recorder, Raise("on_fit_start", RuntimeError("original"))],
    )
    with pytest.raises(RuntimeError, match="original"):
        trainer.fit(random_batches(2))
    assert recorder.calls[-2:] == ["exception:RuntimeError", "teardown"]


def test_a_failing_teardown_after_success_is_raised_after_all_teardowns() -> None:
    class Sloppy(Callback):
        def teardown(self, trainer: Trainer) -> None:
            raise ValueError("broken teardown")

    recorder = Recorder()
    trainer = Trainer(
        small_cnn(), training=TrainingConfig(epochs=1, device="cpu"), callbacks=[Sloppy(), recorder]
    )
    with pytest.raises(ValueError, match="broken teardown"):
        trainer.fit(random_batches(2))
    assert recorder.calls[-2:] == ["fit_end", "teardown"]
