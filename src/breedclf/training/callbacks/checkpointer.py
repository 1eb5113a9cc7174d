"""Checkpointer: a resumable checkpoint every epoch, and the best weights by validation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from breedclf._io import atomic_path
from breedclf.training.callbacks._monitor import Monitor, improved, monitored_value
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
        monitor: ``valid_acc`` (higher is better) or ``valid_loss`` (lower is better). Without a
            validation split, the last epoch counts as best.
    """

    order = 1000
    LAST = "last.ckpt"
    BEST = "best.safetensors"

    def __init__(self, directory: str | Path, *, monitor: Monitor = "valid_acc") -> None:
        self.directory = Path(directory)
        self.monitor: Monitor = monitor
        self.best_value: float | None = None
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
        from safetensors.torch import save_file

        value = monitored_value(result.valid, self.monitor) if result.valid else None
        if value is None or improved(value, self.best_value, self.monitor) or not self.best_epoch:
            if value is not None and improved(value, self.best_value, self.monitor):
                self.best_value = value
            self.best_epoch = result.epoch
            state = {
                k: v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()
            }
            with atomic_path(self.best_path) as tmp:
                save_file(state, str(tmp))
        trainer.save_checkpoint(self.last_path)

    def state_dict(self) -> dict[str, Any]:
        """Best value and epoch."""
        return {"best_value": self.best_value, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore best value and epoch."""
        self.best_value = state["best_value"]
        self.best_epoch = int(state["best_epoch"])
