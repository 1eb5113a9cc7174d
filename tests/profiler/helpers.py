"""Real trainings of the test net on in-memory images, with a data loader that can be slow."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from breedclf.config import TrainingConfig
from breedclf.data import Batch
from breedclf.profiler import (
    FrameworkMetrics,
    ProfilerRule,
    ProfilerRules,
    SectionProfiler,
    SystemMonitor,
)
from breedclf.training import Callback, Trainer
from tests.profiler.conftest import SIZE, profiler_test_net


class SleepyImages(Dataset[tuple[torch.Tensor, int]]):
    """``count`` coloured-noise images of 3 classes; every ``every``-th item sleeps first."""

    def __init__(self, count: int, *, every: int = 0, sleep: float = 0.0) -> None:
        gen = torch.Generator().manual_seed(0)
        self.targets = torch.arange(count) % 3
        self.images = torch.randn(count, 3, SIZE, SIZE, generator=gen) + self.targets.view(
            -1, 1, 1, 1
        )
        self.every, self.sleep = every, sleep

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.every and index % self.every == 0:
            time.sleep(self.sleep)  # a slow read: network storage, a cold cache
        return self.images[index], int(self.targets[index])


class UnevenCompute(Callback):
    """Every other training step computes ``extra`` seconds longer (a sleep inside the step,
    after its data arrived): a healthy run whose step times spread widely but boundedly, so
    the spread, not the machine's scheduling jitter, sets StepOutlier's mean + 3 std."""

    def __init__(self, extra: float = 0.06) -> None:
        self.extra = extra

    def on_train_batch_start(self, trainer: Trainer, batch: Batch, batch_idx: int) -> None:
        if batch_idx % 2:
            time.sleep(self.extra)


def collate(items: Sequence[tuple[torch.Tensor, int]]) -> Batch:
    return Batch(torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items]))


def profiled_fit(
    run_dir: Path,
    rules: Sequence[ProfilerRule],
    *,
    dataset: SleepyImages,
    batch_size: int = 4,
    epochs: int = 1,
    interval: float = 0.1,
    scan_interval: float = 1.0,
    extra: Sequence[Callback] = (),
) -> Trainer:
    """Train the test net with the monitor, framework metrics and ``rules`` on."""
    trainer = Trainer(
        profiler_test_net(),
        training=TrainingConfig(epochs=epochs, device="cpu", batch_size=batch_size),
        callbacks=[
            SystemMonitor(interval=interval),
            FrameworkMetrics(details={"num_workers": 0}),
            ProfilerRules(rules, scan_interval=scan_interval),
            *extra,
        ],
        profiler=SectionProfiler(),
        run_dir=run_dir,
    )
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    trainer.fit(loader)
    return trainer
