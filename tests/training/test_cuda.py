"""Training on a CUDA GPU: mixed precision, channels_last, pinned memory and resuming."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from breedclf.config import CosineSchedulerConfig, SGDConfig, TrainingConfig
from breedclf.data import Batch
from breedclf.training import Callback, Checkpointer, GradientInfo, StepOutput, Trainer
from tests.training.conftest import LoaderFactory, first_conv, random_batches, small_cnn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class Dtypes(Callback):
    """Records the logits' dtype (autocast's) and the memory format of inputs and weights."""

    def __init__(self) -> None:
        self.logits: list[torch.dtype] = []
        self.channels_last_inputs: list[bool] = []
        self.found_inf: list[torch.Tensor | None] = []

    def on_train_batch_start(self, trainer: Trainer, batch: Batch, batch_idx: int) -> None:
        self.channels_last_inputs.append(
            batch.inputs.is_cuda and batch.inputs.is_contiguous(memory_format=torch.channels_last)
        )

    def on_before_optimizer_step(
        self, trainer: Trainer, step: StepOutput, gradients: GradientInfo
    ) -> None:
        self.logits.append(step.outputs.dtype)
        self.found_inf.append(gradients.found_inf)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains(amp: str) -> None:
    spy = Dtypes()
    trainer = Trainer(
        small_cnn(),
        training=TrainingConfig(epochs=1, device="cuda", amp=amp),  # type: ignore[arg-type]
        callbacks=[spy],
    )
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    assert trainer.amp_dtype == dtype
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    history = trainer.fit(random_batches(3))
    assert spy.logits == [dtype] * 3
    assert math.isfinite(history[0]["train"]["loss"])
    if amp == "fp16":
        assert all(f is not None and f.is_cuda for f in spy.found_inf)
    else:
        assert spy.found_inf == [None] * 3


def test_auto_amp_follows_this_gpu() -> None:
    trainer = Trainer(small_cnn(), training=TrainingConfig(device="cuda", amp="auto"))
    native_bf16 = torch.cuda.get_device_capability() >= (8, 0)
    assert trainer.amp_dtype == (torch.bfloat16 if native_bf16 else torch.float16)


def test_fp16_skipped_steps_do_not_advance_the_schedule() -> None:
    trainer = Trainer(
        small_cnn(),
        training=TrainingConfig(epochs=1, device="cuda", amp="fp16"),
        optimizer=SGDConfig(lr=0.1),
        scheduler=CosineSchedulerConfig(),
    )
    nan = [Batch(torch.full((4, 3, 32, 32), math.nan), torch.tensor([0, 1, 2, 0]))] * 2
    trainer.fit(nan)
    assert trainer.scheduler is not None
    assert trainer.scheduler.last_epoch == 0
    assert trainer.optimizer.param_groups[0]["lr"] == 0.1


def test_channels_last_on_cuda() -> None:
    spy = Dtypes()
    trainer = Trainer(
        small_cnn(), training=TrainingConfig(epochs=1, device="cuda"), callbacks=[spy]
    )
    conv = first_conv(trainer.model).weight
    assert conv.is_cuda and conv.is_contiguous(memory_format=torch.channels_last)
    trainer.fit(random_batches(2))
    assert spy.channels_last_inputs == [True, True]


def test_pinned_batches_train(texture_loaders: LoaderFactory) -> None:
    from breedclf.data import ImageDataset, create_dataloader

    model = small_cnn()
    train, _ = texture_loaders(model)
    dataset = train.dataset
    assert isinstance(dataset, ImageDataset)
    pinned = create_dataloader(
        dataset, batch_size=4, shuffle=True, seed=0, num_workers=1, pin_memory=True
    )
    first = next(iter(pinned))
    assert first.inputs.is_pinned() and first.targets.is_pinned()
    history = Trainer(model, training=TrainingConfig(epochs=1, device="cuda")).fit(pinned)
    assert history[0]["train"]["count"] == len(dataset)


def test_a_cuda_checkpoint_resumes_on_cuda_and_on_cpu(tmp_path: Path) -> None:
    batches = random_batches(2)
    first = Trainer(
        small_cnn(),
        training=TrainingConfig(epochs=1, device="cuda", amp="fp16"),
        callbacks=[Checkpointer(tmp_path)],
    )
    first.fit(batches, batches)
    checkpoint = tmp_path / Checkpointer.LAST
    for device, amp in (("cuda", "fp16"), ("cpu", "off")):
        resumed = Trainer(
            small_cnn(seed=1),
            training=TrainingConfig(epochs=2, device=device, amp=amp),  # type: ignore[arg-type]
            callbacks=[Checkpointer(tmp_path / device)],
        )
        history = resumed.fit(batches, batches, resume_from=checkpoint)
        assert [h["epoch"] for h in history] == [1, 2]
        assert resumed.state.global_step == 4
        assert next(resumed.model.parameters()).device.type == device
