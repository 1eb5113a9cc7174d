"""Training on a CUDA GPU: mixed precision, channels_last, pinned memory and resuming."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from breedclf.config import TrainingConfig
from breedclf.training import Checkpointer, Trainer
from tests.training.conftest import random_batches, small_cnn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


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
