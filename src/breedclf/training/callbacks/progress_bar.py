"""ProgressBar: tqdm bars for epochs and batches (silent when output is not a terminal)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from breedclf.training.callbacks.callback import Callback, EpochResult, StepOutput

if TYPE_CHECKING:
    from breedclf.training.trainer import Trainer

__all__ = ["ProgressBar"]


class ProgressBar(Callback):
    """Epoch and batch progress bars with the running loss.

    Args:
        enabled: ``None`` shows bars only on a terminal (not in SageMaker or CI logs).
        refresh_every: Batches between loss read-outs (each read-out syncs the device).
    """

    rank_zero_only = True

    def __init__(self, *, enabled: bool | None = None, refresh_every: int = 10) -> None:
        self.disable = None if enabled is None else not enabled
        self.refresh_every = refresh_every
        self._epochs: Any = None
        self._batches: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        """Open the epoch bar."""
        total = trainer.config.epochs
        self._epochs = tqdm(
            total=total, initial=trainer.state.epoch, desc="epochs", disable=self.disable
        )

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Open a batch bar."""
        self._batches = tqdm(
            total=trainer.steps_per_epoch, desc=f"epoch {epoch}", leave=False, disable=self.disable
        )

    def on_train_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        """Advance; show the loss now and then."""
        if self._batches is None:
            return
        self._batches.update(1)
        if step.batch_idx % self.refresh_every == 0:
            self._batches.set_postfix(loss=f"{step.loss.detach().item():.4f}")

    def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:
        """Close the batch bar; show validation accuracy on the epoch bar."""
        if self._batches is not None:
            self._batches.close()
        if self._epochs is not None:
            self._epochs.update(1)
            if result.valid:
                self._epochs.set_postfix(valid_acc=f"{result.valid['acc']:.3f}")

    def teardown(self, trainer: Trainer) -> None:
        """Close the bars, whether training ended or raised (so a traceback is readable)."""
        for bar in (self._batches, self._epochs):
            if bar is not None:
                bar.close()
        self._batches = self._epochs = None
