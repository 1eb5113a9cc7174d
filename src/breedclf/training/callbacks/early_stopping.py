"""EarlyStopping: stop when the validation metric stops improving."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from breedclf.training.callbacks._monitor import Monitor, improved, monitored_value
from breedclf.training.callbacks.callback import Callback

if TYPE_CHECKING:
    from breedclf.training.trainer import Trainer

__all__ = ["EarlyStopping"]

log = logging.getLogger("breedclf.training")


class EarlyStopping(Callback):
    """Ask the trainer to stop after ``patience`` epochs without improvement.

    Args:
        monitor: ``valid_acc`` or ``valid_loss``.
        patience: Epochs without improvement tolerated.
        min_delta: Smallest change that counts as an improvement.
    """

    # Rank 0 decides (and logs once); the trainer broadcasts the decision to every rank.
    rank_zero_only = True

    def __init__(
        self, *, monitor: Monitor = "valid_acc", patience: int = 3, min_delta: float = 0.0
    ) -> None:
        self.monitor: Monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.best: float | None = None
        self.wait = 0

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """Update the counter; set ``trainer.should_stop`` when patience runs out."""
        value = monitored_value(metrics, self.monitor)
        if improved(value, self.best, self.monitor, self.min_delta):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            log.info(
                "early stopping: %s has not improved for %d epochs (best %s)",
                self.monitor,
                self.wait,
                self.best,
            )
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        """Best value and epochs waited."""
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore best value and epochs waited."""
        self.best, self.wait = state["best"], int(state["wait"])
