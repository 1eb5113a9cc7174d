"""Checkpointer: a resumable checkpoint every epoch, and the best weights by validation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from breedclf._io import save_weights
from breedclf.training.callbacks._monitor import Monitor, selection_key
from breedclf.training.callbacks.callback import Callback, EpochResult

if TYPE_CHECKING:
    from breedclf.training.trainer import Trainer

__all__ = ["Checkpointer"]


class Checkpointer(Callback):
    """Writes ``last.ckpt`` after every epoch and ``best.safetensors`` when validation improves.

    Both writes are atomic. It runs after every other callback, so the checkpoint holds their
    updated state. Model selection only ever looks at the validation split.

    Args:
        directory: Where the files go.
        monitor: ``valid_acc`` (higher is better; ties go to the lower validation loss) or
            ``valid_loss`` (lower is better; ties go to the higher accuracy). Without a
            validation split, the last epoch counts as best.
    """

    order = 1000
    rank_zero_only = True
    LAST = "last.ckpt"
    BEST = "best.safetensors"

    def __init__(self, directory: str | Path, *, monitor: Monitor = "valid_acc") -> None:
        self.directory = Path(directory)
        self.monitor: Monitor = monitor
        self.best_key: tuple[float, float] | None = None
        self.best_epoch: int = 0

    @property
    def last_path(self) -> Path:
        """The resumable checkpoint."""
        return self.directory / self.LAST

    @property
    def best_path(self) -> Path:
        """Weights of the best epoch so far."""
        return self.directory / self.BEST

    def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:
        """Save best weights (if improved), then the resumable checkpoint."""
        with trainer.profile("checkpoint"):
            self._save(trainer, result)

    def _save(self, trainer: Trainer, result: EpochResult) -> None:
        if result.valid:
            key = selection_key(result.valid, self.monitor)
            better = not math.isnan(key[0]) and (self.best_key is None or key > self.best_key)
        else:  # no validation split: the latest epoch is the model
            key, better = None, True
        if better or not self.best_epoch:
            if better:
                self.best_key = key
            self.best_epoch = result.epoch
            save_weights(trainer.model, self.best_path)
        trainer.save_checkpoint(self.last_path)

    @property
    def best_value(self) -> float | None:
        """The monitored metric of the best epoch (``None`` before any validation)."""
        if self.best_key is None:
            return None
        return self.best_key[0] if self.monitor == "valid_acc" else -self.best_key[0]

    def state_dict(self) -> dict[str, Any]:
        """Best selection key and epoch."""
        return {
            "best_key": list(self.best_key) if self.best_key else None,
            "best_epoch": self.best_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore best selection key and epoch."""
        key = state["best_key"]
        self.best_key = (float(key[0]), float(key[1])) if key else None
        self.best_epoch = int(state["best_epoch"])
