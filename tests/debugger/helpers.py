"""Tiny real trainings for the debugger tests: small nets on synthetic 8 px images."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from breedclf.config import ConstantSchedulerConfig, SGDConfig, TrainingConfig
from breedclf.data import Batch
from breedclf.debugger import Debugger, Finding, Rule, evaluate_trial, read_findings
from breedclf.models import ImageClassifier
from breedclf.preprocessing import PreprocessSpec
from breedclf.training import Callback, Trainer

SIZE = 8
CLASSES = 3


def net(
    *,
    depth: int = 2,
    width: int = 8,
    act: type[nn.Module] = nn.ReLU,
    norm: bool = True,
    conv_bias: bool | None = None,
    seed: int = 0,
) -> ImageClassifier:
    """``depth`` × (conv → [BN] → act) on 3-channel images, pooled, linear head.

    Convolutions have a bias unless followed by BN (``conv_bias`` overrides)."""
    torch.manual_seed(seed)
    stages: list[nn.Module] = []
    channels = 3
    for _ in range(depth):
        layers: list[nn.Module] = [
            nn.Conv2d(
                channels, width, 3, padding=1, bias=not norm if conv_bias is None else conv_bias
            )
        ]
        if norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(act())
        stages.append(nn.Sequential(*layers))
        channels = width
    return ImageClassifier(
        arch="test_net",
        stages=stages,
        num_features=width,
        num_classes=CLASSES,
        preprocess=PreprocessSpec(input_size=SIZE, resize_size=SIZE),
    )


def batches(
    n: int,
    *,
    batch: int = 16,
    seed: int = 0,
    signal: float = 1.5,
    offset: float = 0.0,
    scale: float = 1.0,
    weights: Sequence[float] | None = None,
    shuffle_labels: bool = False,
) -> list[Batch]:
    """Separable classes: class k adds a zero-sum channel pattern to unit noise.

    ``offset``/``scale`` distort the inputs (unnormalised images), ``weights`` skews the class
    frequencies, ``shuffle_labels`` makes the labels unrelated to the images.
    """
    g = torch.Generator().manual_seed(seed)
    centroids = torch.eye(CLASSES) - 1 / CLASSES  # balanced classes: zero mean per channel
    out = []
    for _ in range(n):
        if weights is None:
            targets = torch.arange(batch) % CLASSES
            targets = targets[torch.randperm(batch, generator=g)]
        else:
            targets = torch.multinomial(torch.tensor(weights), batch, True, generator=g)
        x = torch.randn(batch, 3, SIZE, SIZE, generator=g)
        x = x + signal * centroids[targets][:, :, None, None]
        if shuffle_labels:
            targets = torch.randint(0, CLASSES, (batch,), generator=g)
        out.append(Batch(x * scale + offset, targets))
    return out


@dataclass
class Result:
    """What a debugged training produced."""

    trainer: Trainer
    debugger: Debugger
    findings: list[Finding]
    run_dir: Path

    def fired(self, rule: str) -> list[Finding]:
        """Findings of one rule label."""
        return [f for f in self.findings if f.rule == rule]


def fit(
    model: ImageClassifier,
    rules: Sequence[Rule],
    train: Sequence[Batch],
    run_dir: Path,
    *,
    valid: Sequence[Batch] | None = None,
    epochs: int = 1,
    lr: float = 0.05,
    momentum: float = 0.9,
    save_interval: int = 1,
    callbacks: Sequence[Callback] = (),
    **debugger: object,
) -> Result:
    """Train on CPU in fp32 with SGD and a constant rate, under a Debugger of ``rules``."""
    dbg = Debugger(rules, save_interval=save_interval, **debugger)  # type: ignore[arg-type]
    trainer = Trainer(
        model,
        training=TrainingConfig(
            epochs=epochs, device="cpu", amp="off", channels_last="off", seed=0
        ),
        optimizer=SGDConfig(lr=lr, momentum=momentum, nesterov=False, weight_decay=0.0),
        scheduler=ConstantSchedulerConfig(),
        callbacks=[dbg, *callbacks],
        run_dir=run_dir,
    )
    trainer.fit(train, valid)
    return Result(trainer, dbg, read_findings(run_dir), run_dir)


def offline(result: Result, rules: Sequence[Rule]) -> list[Finding]:
    """The same rules re-evaluated on the saved trial."""
    findings, _ = evaluate_trial(result.run_dir, rules)
    return findings


class Stall(Sequence[Batch]):
    """A loader that stalls ``seconds`` before batch ``at``."""

    def __init__(self, items: list[Batch], at: int, seconds: float) -> None:
        self.items, self.at, self.seconds = items, at, seconds

    def __iter__(self) -> Iterator[Batch]:
        import time

        for i, item in enumerate(self.items):
            if i == self.at:
                time.sleep(self.seconds)
            yield item

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Batch:  # type: ignore[override]
        return self.items[i]


class Hang(Sequence[Batch]):
    """A loader that hangs before batch ``at`` until ``released()`` holds (at most ``limit`` s).

    ``released_by`` says what ended the hang: ``"condition"`` or ``"timeout"``.
    """

    def __init__(
        self, items: list[Batch], at: int, released: Callable[[], bool], limit: float = 60.0
    ) -> None:
        self.items, self.at, self.released, self.limit = items, at, released, limit
        self.released_by = ""

    def __iter__(self) -> Iterator[Batch]:
        import time

        for i, item in enumerate(self.items):
            if i == self.at:
                deadline = time.monotonic() + self.limit
                while not self.released() and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.released_by = "condition" if self.released() else "timeout"
            yield item

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Batch:  # type: ignore[override]
        return self.items[i]
