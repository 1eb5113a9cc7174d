"""Timing sections: per-step events with timestamps, CUDA-aware, and every callback hook timed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from breedclf.config import TrainingConfig
from breedclf.profiler import NullProfiler, ProfileEvent, Profiler, SectionProfiler
from breedclf.training import Callback, Checkpointer, StepOutput, Trainer
from tests.training.conftest import random_batches, small_cnn


def test_events_carry_name_step_start_and_duration() -> None:
    prof = SectionProfiler()
    before = time.time()
    for step in (1, 2):
        with prof.profile("forward", step=step):
            time.sleep(0.001)
    with prof.profile("loose"):
        pass
    after = time.time()
    assert [(e.name, e.step) for e in prof.events] == [
        ("forward", 1),
        ("forward", 2),
        ("loose", None),
    ]
    first, second = prof.events[0], prof.events[1]
    assert before <= first.start <= second.start <= after  # Unix time, in order
    assert first.start + first.duration <= second.start + 1e-6  # float rounding of Unix time
    assert all(e.duration > 0 for e in list(prof.events)[:2])
    assert prof.counts["forward"] == 2
    assert prof.seconds["forward"] == pytest.approx(first.duration + second.duration)
    assert list(prof.summary()) == ["forward", "loose"]  # sorted by total time


def test_a_section_that_raises_is_still_recorded() -> None:
    prof = SectionProfiler()
    with pytest.raises(ValueError, match="inside"), prof.profile("data", step=3):
        raise ValueError("inside")
    assert prof.events[0].name == "data"
    assert prof.events[0].step == 3


def test_event_buffer_is_bounded_but_totals_are_not() -> None:
    prof = SectionProfiler(max_events=3)
    for step in range(5):
        with prof.profile("data", step=step):
            pass
    assert [e.step for e in prof.events] == [2, 3, 4]
    assert prof.counts["data"] == 5


def test_null_profiler_is_one_shared_no_op() -> None:
    null: Profiler = NullProfiler()
    first, second = null.profile("forward", step=1), null.profile("backward")
    assert first is second
    with first:
        pass


def test_synchronize_without_cuda_in_use_is_harmless() -> None:
    prof = SectionProfiler(synchronize=True)
    with prof.profile("forward", step=1):
        torch.ones(2).sum()
    assert prof.counts["forward"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_synchronize_charges_gpu_work_to_its_own_section() -> None:
    x = torch.randn(4096, 4096, device="cuda")
    torch.cuda.synchronize()
    prof = SectionProfiler(synchronize=True)
    with prof.profile("matmul", step=1):
        for _ in range(20):
            x = x @ x / 4096
    with prof.profile("after", step=1):
        pass
    matmul, after = prof.events
    assert matmul.duration > after.duration  # the GPU wait is not pushed into "after"


def test_fit_records_every_section_at_its_step(tmp_path: Path) -> None:
    class Noop(Callback):
        def on_train_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
            pass

    prof = SectionProfiler()
    batches = random_batches(2)
    trainer = Trainer(
        small_cnn(),
        training=TrainingConfig(epochs=2, device="cpu", grad_clip_norm=1.0),
        callbacks=[Noop(), Checkpointer(tmp_path)],
        profiler=prof,
    )
    trainer.fit(batches, batches[:1])
    names = set(prof.counts)
    assert {
        "data",
        "to_device",
        "forward",
        "backward",
        "grad_clip",
        "optimizer_step",
        "validation",
        "checkpoint",
        "callback.Noop.on_train_batch_end",
        "callback.Checkpointer.on_epoch_end",
        "callback.Checkpointer.teardown",
    } <= names
    for name in ("forward", "backward", "optimizer_step", "to_device"):
        assert [e.step for e in prof.events if e.name == name] == [1, 2, 3, 4], name
    assert [e.step for e in prof.events if e.name == "callback.Noop.on_train_batch_end"] == [
        1,
        2,
        3,
        4,
    ]
    assert [e.step for e in prof.events if e.name == "validation"] == [2, 4]
    assert [e.step for e in prof.events if e.name == "checkpoint"] == [2, 4]
    # The checkpoint section nests inside the Checkpointer's hook section.
    hook = next(e for e in prof.events if e.name == "callback.Checkpointer.on_epoch_end")
    save = next(e for e in prof.events if e.name == "checkpoint")
    assert hook.start <= save.start + 1e-6
    assert save.start + save.duration <= hook.start + hook.duration + 1e-6
    assert isinstance(prof.events[0], ProfileEvent)
