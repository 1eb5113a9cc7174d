"""Callbacks imported by the distributed tests' training processes (``--import``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from breedclf.training import Callback, register_callback

if TYPE_CHECKING:
    from breedclf.data import Batch
    from breedclf.training import Trainer


@register_callback("record_inputs")
class RecordInputs(Callback):
    """Every rank writes a fingerprint of each training sample it saw, by epoch and step."""

    def __init__(self, *, directory: str) -> None:
        self.directory = Path(directory)
        self.seen: dict[int, list[list[list[float]]]] = {}
        self._epoch = 0

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Start the epoch's list of steps."""
        self._epoch = epoch
        self.seen[epoch] = []

    def on_train_batch_start(self, trainer: Trainer, batch: Batch, batch_idx: int) -> None:
        """Record (sum, target) of every sample: augmentation included, order kept."""
        sums = batch.inputs.detach().double().flatten(1).sum(1).cpu()
        targets = batch.targets.cpu().double()
        self.seen[self._epoch].append(torch.stack([sums, targets], 1).tolist())

    def teardown(self, trainer: Trainer) -> None:
        """Write ``rank<R>.json``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"rank{trainer.distributed.rank}.json"
        path.write_text(json.dumps(self.seen), encoding="utf-8")
