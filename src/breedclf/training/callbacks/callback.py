"""The callback interface: typed hooks the Trainer calls; every hook does nothing by default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from breedclf.data import Batch
    from breedclf.training.trainer import Trainer

__all__ = ["Callback", "EpochResult", "StepOutput"]


@dataclass(frozen=True)
class StepOutput:
    """What one training or validation batch produced.

    Attributes:
        epoch: 1-based epoch number.
        batch_idx: 0-based batch index within the epoch.
        global_step: Optimizer steps taken so far (after this one, for training batches).
        inputs: The model inputs, on the training device.
        targets: Integer class targets.
        outputs: Logits ``[N, num_classes]``.
        loss: The batch-mean loss (a 0-dim tensor; detached in validation).
    """

    epoch: int
    batch_idx: int
    global_step: int
    inputs: torch.Tensor
    targets: torch.Tensor
    outputs: torch.Tensor
    loss: torch.Tensor


@dataclass(frozen=True)
class EpochResult:
    """Metrics of a finished epoch (``valid`` is empty when there is no validation split)."""

    epoch: int
    train: dict[str, Any]
    valid: dict[str, Any]
    lr: float
    seconds: float
    images_per_second: float


class Callback:
    """Base class for everything that reacts to training: override only the hooks you need.

    Hook order for one epoch of two batches with validation::

        on_fit_start
        on_epoch_start
        on_train_batch_start, on_after_backward, on_train_batch_end      (batch 0)
        on_train_batch_start, on_after_backward, on_train_batch_end      (batch 1)
        on_validation_start
        on_validation_batch_end ...                                      (per batch)
        on_validation_end
        on_epoch_end
        on_fit_end

    ``on_exception`` replaces the remaining hooks when training raises. Callbacks run in
    ascending :attr:`order` (ties keep the given order); checkpointing runs last so it saves the
    other callbacks' updated state.
    """

    order: int = 0

    @property
    def state_key(self) -> str:
        """Key of this callback's state in checkpoints (class name by default)."""
        return type(self).__qualname__

    def on_fit_start(self, trainer: Trainer) -> None:
        """Training is about to start (after a resume's state was loaded)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """Training finished normally (also after early stopping)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """An epoch (1-based) is starting."""

    def on_train_batch_start(self, trainer: Trainer, batch: Batch, batch_idx: int) -> None:
        """A training batch arrived (already on the device)."""

    def on_after_backward(self, trainer: Trainer, step: StepOutput) -> None:
        """Gradients are computed (and unscaled under AMP); the optimizer has not stepped."""

    def on_train_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        """The optimizer stepped for this batch."""

    def on_validation_start(self, trainer: Trainer) -> None:
        """Validation of the current epoch is starting."""

    def on_validation_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        """A validation batch was evaluated."""

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """Validation metrics of the epoch are ready (``loss``, ``acc``, ``top5``, ...)."""

    def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:
        """The epoch, including validation, is complete."""

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        """Training raised (including KeyboardInterrupt); the exception propagates afterwards."""

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints (plain Python values and tensors only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
