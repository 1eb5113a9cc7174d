"""The callback interface: typed hooks the Trainer calls; every hook does nothing by default."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from breedclf.data import Batch
    from breedclf.training.trainer import Trainer

__all__ = ["Callback", "EpochResult", "GradientInfo", "StepOutput"]


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
        loss: The batch-mean loss the optimizer minimises, with label smoothing when configured
            (a 0-dim tensor; detached in validation, where it is never smoothed).
        loss_unsmoothed: The batch-mean cross-entropy without label smoothing (detached): the
            quantity that validation's ``loss`` measures, so the two compare like for like.
            Equal to ``loss`` without label smoothing and in validation.
        validation_step: Validation batches evaluated during this fit, counting this one for a
            validation batch (a counter of its own, unlike ``global_step``, which counts
            optimizer steps); for a training batch, the count so far.
    """

    epoch: int
    batch_idx: int
    global_step: int
    inputs: torch.Tensor
    targets: torch.Tensor
    outputs: torch.Tensor
    loss: torch.Tensor
    loss_unsmoothed: torch.Tensor = field(kw_only=True)
    validation_step: int = field(kw_only=True)


@dataclass(frozen=True)
class GradientInfo:
    """The gradients as the optimizer is about to use them (unscaled, clipped).

    Both are 0-dim tensors on the training device, left unsynchronised (reading one with
    ``.item()`` waits for the GPU).

    Attributes:
        found_inf: Non-zero when the AMP loss scaler found inf/NaN gradients, in which case the
            optimizer step (and the scheduler step) is skipped; ``None`` without loss scaling
            (fp32 and bf16 training).
        grad_norm: The total L2 norm of the gradients *before* clipping, when clipping
            (``training.grad_clip_norm``) computed it; ``None`` otherwise.
    """

    found_inf: torch.Tensor | None
    grad_norm: torch.Tensor | None


@dataclass(frozen=True)
class EpochResult:
    """Metrics of a finished epoch (``valid`` is empty when there is no validation split).

    Attributes:
        epoch: 1-based epoch number.
        train: Training metrics: ``loss`` (as optimised, with label smoothing),
            ``loss_unsmoothed``, ``acc``, ``top5``, ``count``.
        valid: Validation metrics (``loss``, ``acc``, ``top5``, ``count``); never smoothed.
        lr: Learning rate of the first parameter group (the new head's) at the epoch's end.
        lrs: Learning rate of every parameter group at the epoch's end, by group name
            (``head``, ``head_no_decay``, ``backbone``, ``backbone_no_decay``; frozen parts
            have no group).
        seconds: Training time of the epoch (without validation).
        images_per_second: Training throughput.
    """

    epoch: int
    train: dict[str, Any]
    valid: dict[str, Any]
    lr: float
    seconds: float
    images_per_second: float
    lrs: dict[str, float] = field(kw_only=True)


class Callback:
    """Base class for everything that reacts to training: override only the hooks you need.

    Hook order for one epoch of two batches with validation::

        on_fit_start
        on_epoch_start
        on_train_batch_start, on_after_backward, on_before_optimizer_step, on_train_batch_end
                                                                          (batch 0)
        on_train_batch_start, on_after_backward, on_before_optimizer_step, on_train_batch_end
                                                                          (batch 1)
        on_validation_start
        on_validation_batch_end ...                                       (per batch)
        on_validation_end
        on_epoch_end
        on_fit_end
        teardown

    When anything in :meth:`Trainer.fit <breedclf.training.Trainer.fit>` raises (loading the
    resume checkpoint, any hook including ``on_fit_start`` and ``on_fit_end``, the loop itself,
    or ``KeyboardInterrupt``), ``on_exception`` replaces the remaining hooks, then the exception
    propagates. ``teardown`` runs last in every case (success, exception, interrupt): release
    threads, hooks and files there. Every callback's ``on_exception`` and ``teardown`` runs
    even when another callback's raised (that error is logged; the original one propagates).

    Callbacks run in ascending :attr:`order` (ties keep the given order); checkpointing runs
    last so it saves the other callbacks' updated state. Each hook call is timed by the
    trainer's profiler as the section ``callback.<ClassName>.<hook>``.

    Under data-parallel training (``docs/distributed.md``) a callback runs on every rank
    unless it sets :attr:`rank_zero_only` (writers: logs, files, progress bars, reports). A
    ``should_stop`` set on rank 0 is what every rank follows: the trainer broadcasts it at
    epoch end, and after every training step when some callback sets :attr:`stops_mid_epoch`.
    """

    order: int = 0
    #: Run only on rank 0 of a data-parallel job (it logs, writes files or shows progress).
    rank_zero_only: ClassVar[bool] = False
    #: May set ``trainer.should_stop`` during a training step; under data-parallel training the
    #: ranks then agree on it after every step (one one-byte broadcast per step).
    stops_mid_epoch: ClassVar[bool] = False

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
        """Gradients are computed (and unscaled under AMP), not yet clipped; no optimizer step."""

    def on_before_optimizer_step(
        self, trainer: Trainer, step: StepOutput, gradients: GradientInfo
    ) -> None:
        """Gradients are final (unscaled and clipped); the optimizer is about to step.

        ``gradients.found_inf`` says whether the AMP scaler will skip this step.
        """

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
        """``fit`` raised (including KeyboardInterrupt); the exception propagates afterwards."""

    def teardown(self, trainer: Trainer) -> None:
        """The last call of every ``fit``, whether it succeeded or raised: release resources."""

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints (plain Python values and tensors only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
