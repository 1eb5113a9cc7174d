"""The training loop. It only trains and emits events; everything else is a callback."""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from breedclf._device import resolve_amp, resolve_device
from breedclf._io import atomic_path
from breedclf.config import (
    AdamWConfig,
    CosineSchedulerConfig,
    OptimizerConfig,
    SchedulerConfig,
    TrainingConfig,
)
from breedclf.data import Batch, SkippedImageWarning
from breedclf.errors import CheckpointError, ConfigurationError, DatasetError
from breedclf.models import ImageClassifier
from breedclf.profiler import NullProfiler, Profiler
from breedclf.training import _distributed as ddp
from breedclf.training._checkpoint import CHECKPOINT_FORMAT, checked_metadata, read_checkpoint
from breedclf.training._metrics import ClassificationMetrics
from breedclf.training._optim import create_optimizer, create_scheduler
from breedclf.training.callbacks.callback import Callback, EpochResult, GradientInfo, StepOutput

__all__ = ["BatchLoader", "TrainState", "Trainer", "resolve_device"]

log = logging.getLogger("breedclf.training")

_P = ParamSpec("_P")


class BatchLoader(Protocol):
    """What :meth:`Trainer.fit` iterates: a sized iterable of batches (a ``DataLoader[Batch]``).

    A loader whose ``batch_sampler`` or ``sampler`` has ``set_epoch(epoch)`` gets it called
    before each epoch (:class:`~breedclf.data.EpochSampler` reshuffles with it).
    """

    def __iter__(self) -> Iterator[Batch]: ...

    def __len__(self) -> int: ...


@dataclass
class TrainState:
    """Progress that a checkpoint must restore.

    Attributes:
        epoch: Completed epochs.
        global_step: Optimizer steps taken (batches trained, including steps the AMP scaler
            skipped).
        validation_step: Validation batches evaluated during ``fit`` (not by :meth:`evaluate`).
        history: One :class:`EpochResult` dict per completed epoch.
        should_stop: A callback asked to stop after the current epoch.
    """

    epoch: int = 0
    global_step: int = 0
    validation_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    should_stop: bool = False


class Trainer:
    """Fits an :class:`ImageClassifier`, emitting events to callbacks.

    Runs on ``training.device`` (see :func:`breedclf._device.resolve_device`: ``auto`` is CUDA
    when present, else CPU; MPS only by name) in channels_last memory format unless turned off.
    Mixed precision follows ``training.amp`` (:func:`breedclf._device.resolve_amp`): ``auto``
    is bf16 on GPUs of compute capability ≥ 8.0, fp16 with loss scaling on older GPUs, and off
    on CPU; ``bf16`` also runs on CPU; ``fp16`` is CUDA-only.

    Started by ``torchrun`` (``training.distributed: auto``), it trains data-parallel with
    :class:`~torch.nn.parallel.DistributedDataParallel`: one process per GPU (``LOCAL_RANK``),
    gradients averaged over ranks, metrics summed over ranks, ``should_stop`` taken from rank 0,
    callbacks that set ``rank_zero_only`` only on rank 0. Its loaders must be sharded
    (:func:`~breedclf.data.create_dataloader` with ``rank``/``num_replicas``);
    ``docs/distributed.md`` has the details. :attr:`model` stays the plain model.

    Args:
        model: The classifier (its freeze policy already applied).
        training: Loop settings.
        optimizer: Optimizer settings (head vs backbone learning rates).
        scheduler: Learning-rate schedule, stepped after every optimizer step that was taken
            (not after one the fp16 loss scaler skipped).
        callbacks: Event receivers, called in ascending ``order``.
        profiler: Receives timed sections (see :mod:`breedclf.profiler`); none by default.
        run_dir: The run's output directory, for callbacks that write files
            (:attr:`run_dir`); the trainer itself writes nothing there.
        checkpoint_metadata: Plain values (str, numbers, bools, None, lists, dicts) stored in
            every checkpoint under ``"metadata"``; read back cheaply with
            :func:`~breedclf.training.read_checkpoint_metadata`.

    Raises:
        ConfigurationError: The device or precision is not available, callbacks share a
            ``state_key``, or the metadata holds other types.

    Example:
        >>> trainer = Trainer(model, training=TrainingConfig(epochs=3))      # doctest: +SKIP
        >>> history = trainer.fit(train_loader, valid_loader)                 # doctest: +SKIP
    """

    def __init__(
        self,
        model: ImageClassifier,
        *,
        training: TrainingConfig | None = None,
        optimizer: OptimizerConfig | None = None,
        scheduler: SchedulerConfig | None = None,
        callbacks: Sequence[Callback] = (),
        profiler: Profiler | None = None,
        run_dir: str | Path | None = None,
        checkpoint_metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = training or TrainingConfig()
        self.optimizer_config: OptimizerConfig = optimizer or AdamWConfig()
        self.scheduler_config: SchedulerConfig = scheduler or CosineSchedulerConfig()
        ordered = sorted(callbacks, key=lambda cb: cb.order)
        keys = [cb.state_key for cb in ordered]
        if len(set(keys)) != len(keys):
            raise ConfigurationError(f"callbacks need distinct state_key values, got {keys}")
        self.distributed = ddp.init_distributed(self.config.distributed, self.config.device)
        # Decided from the full list, so that every rank makes the same collective calls.
        self._agree_each_step = self.distributed.enabled and any(
            cb.stops_mid_epoch for cb in ordered
        )
        self.callbacks = [cb for cb in ordered if self.distributed.is_main or not cb.rank_zero_only]
        self.profiler: Profiler = profiler or NullProfiler()
        self.run_dir: Path | None = Path(run_dir) if run_dir is not None else None
        self.checkpoint_metadata = checked_metadata(checkpoint_metadata)
        self.device = ddp.process_device(self.config.device, self.distributed)
        self.amp_dtype = resolve_amp(self.config.amp, self.device)
        self.memory_format = (
            torch.preserve_format if self.config.channels_last == "off" else torch.channels_last
        )
        if self.config.sync_batchnorm and self.distributed.enabled:
            if self.device.type != "cuda":
                raise ConfigurationError(
                    "training.sync_batchnorm needs CUDA GPUs (PyTorch's SyncBatchNorm does not "
                    "run on CPU); set it to false for CPU training"
                )
            # Replaces the BatchNorm layers in place (the root is the classifier, not a BN).
            nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
        self.model = model.to(self.device).to(memory_format=self.memory_format)
        self.optimizer = create_optimizer(model, self.optimizer_config)
        # The module that trains: DDP averages gradients over ranks during backward. Evaluation
        # and checkpoints use the plain model (no ``module.`` prefix, no collectives).
        self._train_module: nn.Module = self.model
        if self.distributed.enabled:
            self._train_module = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        # resolve_amp allows fp16 on CUDA only, the one place breedclf applies loss scaling.
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.config.label_smoothing)
        self.eval_criterion = nn.CrossEntropyLoss()
        self.state = TrainState()
        self.steps_per_epoch = 0
        self._section_step = 0
        self._warned_paths: set[str] = set()
        self._rank_rng: list[dict[str, Any]] = []

    # ----------------------------------------------------------------------------- public API

    @property
    def should_stop(self) -> bool:
        """Set by a callback to end training.

        Set in an epoch-end hook (early stopping), training ends after that epoch; set during a
        training step (a debugger rule's ``stop_training``), the epoch ends after that step: it
        is validated and checkpointed as usual, and a resume finds the run finished.
        """
        return self.state.should_stop

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self.state.should_stop = value

    def fit(
        self,
        train_loader: BatchLoader,
        valid_loader: BatchLoader | None = None,
        *,
        resume_from: str | Path | None = None,
    ) -> list[dict[str, Any]]:
        """Train for ``training.epochs`` epochs (or until a callback stops it).

        Callbacks see ``on_exception`` for anything that raises inside ``fit`` and always get
        ``teardown`` last (see :class:`Callback`).

        Args:
            train_loader: Training batches (a :class:`~breedclf.data.Batch` per step).
            valid_loader: Validation batches, evaluated after every epoch.
            resume_from: A checkpoint written by :meth:`save_checkpoint`; training continues
                exactly where it stopped (model, optimizer, scheduler, RNG, callbacks, epoch).

        Returns:
            The per-epoch history (dicts of :class:`EpochResult` fields).

        Raises:
            CheckpointError: ``resume_from`` is missing, unreadable or of another format.
        """
        failure: BaseException | None = None
        try:
            self._fit(train_loader, valid_loader, resume_from)
        except BaseException as exc:
            failure = exc
            self._notify_exception(exc)
            raise
        finally:
            self._teardown(failure)
        return self.state.history

    def evaluate(self, loader: Iterable[Batch], *, full: bool = True) -> dict[str, Any]:
        """Metrics of the current model over ``loader`` (no callbacks are called).

        Under distributed training every rank calls it with its share of the split (a loader
        from :meth:`Experiment.dataloader <breedclf.experiment.Experiment.dataloader>`) and
        gets the metrics of the whole split.

        Args:
            full: Include per-class accuracy and the confusion matrix.
        """
        return self._evaluate(loader, emit=False, full=full)

    def profile(self, name: str) -> AbstractContextManager[None]:
        """A section of the trainer's profiler at the current step (callbacks time work with it).

        Example:
            >>> with trainer.profile("checkpoint"):  # doctest: +SKIP
            ...     trainer.save_checkpoint(path)
        """
        return self.profiler.profile(name, step=self._section_step)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: model, optimizer, scheduler, scaler, RNG, callbacks.

        Also the caller's ``checkpoint_metadata`` under ``"metadata"``.
        """
        return {
            "format": CHECKPOINT_FORMAT,
            "metadata": self.checkpoint_metadata,
            "trainer": asdict(self.state),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(self.device),
            "callbacks": {cb.state_key: cb.state_dict() for cb in self.callbacks},
            # Every rank's RNG at the last epoch end, so a resume on as many ranks is exact.
            "distributed": {
                "world_size": self.distributed.world_size,
                "rng": self._rank_rng if self.distributed.enabled else [],
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (call after :meth:`fit` created the scheduler).

        Tensors may be on any device: model and optimizer state are copied to the training
        device, RNG states must be (and are loaded as) CPU tensors.
        """
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"unsupported checkpoint format {state.get('format')!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty when saved without loss scaling (e.g. a CPU run)
            self.scaler.load_state_dict(state["scaler"])
        self.state = TrainState(**state["trainer"])
        for cb in self.callbacks:
            if cb.state_key in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][cb.state_key])
        saved = state.get("distributed") or {"world_size": 1, "rng": []}
        rank = self.distributed.rank
        if rank == 0:
            _set_rng_state(state["rng"], self.device)
        elif saved["world_size"] == self.distributed.world_size and len(saved["rng"]) > rank:
            _set_rng_state(saved["rng"][rank], self.device)
        else:  # a rank the checkpoint did not have: seeded from (seed, rank, step)
            _seed_everything(ddp.rank_seed(self.config.seed, rank, self.state.global_step))
        if saved["world_size"] != self.distributed.world_size:
            self._rescale_schedule(saved["world_size"])

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write :meth:`state_dict` atomically (a crash mid-write keeps the old file)."""
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)
        return Path(path)

    def load_checkpoint(self, path: str | Path) -> None:
        """Load a checkpoint written by :meth:`save_checkpoint` (no arbitrary unpickling).

        The file is read onto the CPU whatever device wrote it (a CUDA checkpoint resumes on
        CPU and vice versa); see :func:`~breedclf.training.read_checkpoint`.
        """
        self.load_state_dict(read_checkpoint(path))

    def _rescale_schedule(self, saved_world_size: int) -> None:
        """Put the schedule at the same point of training after a change of process count.

        The checkpoint counted ``steps_per_epoch`` of its own process count; with another
        count an epoch has another number of steps, so the schedule restarts at this epoch's
        boundary of the new count (the optimizer-step counter keeps its value).
        """
        log.warning(
            "resuming a checkpoint of %d process(es) on %d: same epoch, not bit-identical to "
            "an uninterrupted run (the global batch and the steps per epoch differ)",
            saved_world_size,
            self.distributed.world_size,
        )
        scheduler = self.scheduler
        if scheduler is None:
            return
        scheduler.last_epoch = self.state.epoch * self.steps_per_epoch
        with warnings.catch_warnings():  # get_lr warns when called outside step()
            warnings.simplefilter("ignore", UserWarning)
            lrs = [float(lr) for lr in scheduler.get_lr()]
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        scheduler._last_lr = list[float | torch.Tensor](lrs)  # what get_last_lr() reports

    # ------------------------------------------------------------------------------ the loop

    def _fit(
        self,
        train_loader: BatchLoader,
        valid_loader: BatchLoader | None,
        resume_from: str | Path | None,
    ) -> None:
        _check_sharded(train_loader, self.distributed)
        if valid_loader is not None:
            _check_sharded(valid_loader, self.distributed)
        self.steps_per_epoch = max(1, len(train_loader))
        self.scheduler = create_scheduler(
            self.optimizer,
            self.scheduler_config,
            epochs=self.config.epochs,
            steps_per_epoch=self.steps_per_epoch,
        )
        if resume_from is not None:
            self.load_checkpoint(resume_from)
            log.info("resumed from %s after epoch %d", resume_from, self.state.epoch)
        elif self.distributed.rank == 0:
            _seed_everything(self.config.seed)
        else:  # each rank its own dropout masks, reproducibly
            _seed_everything(ddp.rank_seed(self.config.seed, self.distributed.rank, 0))
        self._section_step = self.state.global_step
        self._emit(Callback.on_fit_start)
        for epoch in range(self.state.epoch + 1, self.config.epochs + 1):
            if self.state.should_stop:
                break
            self._run_epoch(epoch, train_loader, valid_loader)
        self._emit(Callback.on_fit_end)

    def _run_epoch(
        self, epoch: int, train_loader: BatchLoader, valid_loader: BatchLoader | None
    ) -> None:
        self._emit(Callback.on_epoch_start, epoch)
        _set_epoch(train_loader, epoch)
        self.model.train()
        metrics = ClassificationMetrics(self.model.num_classes, self.device, unsmoothed=True)
        started = time.perf_counter()
        batches = iter(train_loader)
        batch_idx = 0
        while True:
            self._section_step = self.state.global_step + 1
            with self.profile("data"):
                batch = next(batches, None)
            if batch is None:
                break
            self._warn_skipped(batch)
            if len(batch) == 0:
                if self.distributed.enabled:  # skipping would leave the other ranks waiting
                    raise DatasetError(
                        f"every image of training batch {batch_idx} on rank "
                        f"{self.distributed.rank} is unreadable; under distributed training "
                        "remove the files named in the warnings above, then --resume"
                    )
                continue
            with self.profile("to_device"):
                batch = self._to_device(batch)
            self._emit(Callback.on_train_batch_start, batch, batch_idx)
            self._train_step(epoch, batch_idx, batch, metrics)
            batch_idx += 1
            if self._stop_after_step():
                break  # a callback stopped training at this step: validate and checkpoint now
        self._section_step = self.state.global_step
        seconds = time.perf_counter() - started
        if self.distributed.enabled:
            metrics.all_reduce()
            # DDP sends rank 0's buffers (BatchNorm statistics) at the start of each forward;
            # after the last step each rank holds its own. Validate what rank 0 checkpoints.
            ddp.broadcast_module(self.model, buffers_only=True)
        train_metrics = metrics.compute()
        valid_metrics: dict[str, Any] = {}
        if valid_loader is not None:
            with self.profile("validation"):
                valid_metrics = self._evaluate(valid_loader, emit=True, full=False, epoch=epoch)
        self.state.epoch = epoch
        lrs = {
            str(group.get("name", f"group{i}")): float(group["lr"])
            for i, group in enumerate(self.optimizer.param_groups)
        }
        result = EpochResult(
            epoch=epoch,
            train=train_metrics,
            valid=valid_metrics,
            lr=float(self.optimizer.param_groups[0]["lr"]),
            lrs=lrs,
            seconds=seconds,
            images_per_second=train_metrics["count"] / max(seconds, 1e-9),
        )
        self.state.history.append(asdict(result))
        if self.distributed.enabled:
            self._rank_rng = ddp.gather_states(_rng_state(self.device))
        self._emit(Callback.on_epoch_end, result)
        if self.distributed.enabled:  # rank 0's early stopping / pruning decision holds
            self.state.should_stop = ddp.broadcast_flag(self.state.should_stop, self.device)

    def _stop_after_step(self) -> bool:
        """Whether training stops after this step: rank 0's decision on every rank."""
        if not self.distributed.enabled:
            return self.state.should_stop
        if not self._agree_each_step:
            return False  # no callback stops mid-epoch: the epoch-end broadcast settles it
        self.state.should_stop = ddp.broadcast_flag(self.state.should_stop, self.device)
        return self.state.should_stop

    def _train_step(
        self, epoch: int, batch_idx: int, batch: Batch, metrics: ClassificationMetrics
    ) -> None:
        inputs, targets = batch.inputs, batch.targets
        with self.profile("forward"), self._autocast():
            outputs = self._train_module(inputs)
            loss = self.criterion(outputs.float(), targets)
        loss_unsmoothed = self._unsmoothed_loss(outputs, targets, loss)
        self.optimizer.zero_grad(set_to_none=True)
        with self.profile("backward"):
            self.scaler.scale(loss).backward()
            if self.scaler.is_enabled():
                self.scaler.unscale_(self.optimizer)
        self.state.global_step += 1
        step = StepOutput(
            epoch=epoch,
            batch_idx=batch_idx,
            global_step=self.state.global_step,
            inputs=inputs,
            targets=targets,
            outputs=outputs,
            loss=loss,
            loss_unsmoothed=loss_unsmoothed,
            validation_step=self.state.validation_step,
        )
        self._emit(Callback.on_after_backward, step)
        grad_norm = None
        if self.config.grad_clip_norm is not None:
            with self.profile("grad_clip"):
                grad_norm = nn.utils.clip_grad_norm_(
                    self.model.parameters(), self.config.grad_clip_norm
                )
        found_inf = _found_inf(self.scaler, self.optimizer, self.device)
        self._emit(Callback.on_before_optimizer_step, step, GradientInfo(found_inf, grad_norm))
        with self.profile("optimizer_step"):
            self.scaler.step(self.optimizer)
            self.scaler.update()
            # GradScaler skips the optimizer step on inf/NaN gradients; the schedule must not
            # advance then (reading the flag waits for the GPU, only under fp16 loss scaling).
            stepped = found_inf is None or not bool(found_inf.item())
            if self.scheduler is not None and stepped:
                self.scheduler.step()
        metrics.update(outputs, targets, loss, loss_unsmoothed=loss_unsmoothed)
        self._emit(Callback.on_train_batch_end, step)

    def _evaluate(
        self,
        loader: Iterable[Batch],
        *,
        emit: bool,
        full: bool,
        epoch: int = 0,
    ) -> dict[str, Any]:
        _check_sharded(loader, self.distributed)
        _set_epoch(loader, 0)
        was_training = self.model.training
        self.model.eval()
        metrics = ClassificationMetrics(self.model.num_classes, self.device)
        if emit:
            self._emit(Callback.on_validation_start)
        with torch.no_grad():
            for batch_idx, raw in enumerate(loader):
                self._warn_skipped(raw)
                if len(raw) == 0:
                    continue
                batch = self._to_device(raw)
                with self._autocast():
                    outputs = self.model(batch.inputs)
                    loss = self.eval_criterion(outputs.float(), batch.targets)
                metrics.update(outputs, batch.targets, loss)
                if emit:
                    self.state.validation_step += 1
                    step = StepOutput(
                        epoch, batch_idx, self.state.global_step, batch.inputs,
                        batch.targets, outputs, loss,
                        loss_unsmoothed=loss, validation_step=self.state.validation_step,
                    )  # fmt: skip
                    self._emit(Callback.on_validation_batch_end, step)
        if self.distributed.enabled:
            metrics.all_reduce()
        result = metrics.compute(full=full)
        self.model.train(was_training)
        if emit:
            self._emit(Callback.on_validation_end, result)
        return result

    # ------------------------------------------------------------------------------- helpers

    def _emit(
        self,
        hook: Callable[Concatenate[Callback, Trainer, _P], None],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> None:
        """Call every callback's override of ``hook``, timing each call as a section."""
        # Taking ``Callback.on_x`` itself rather than its name lets mypy check both the hook's
        # name and its arguments; getattr then reaches each subclass's override.
        name = hook.__name__
        for cb in self.callbacks:
            with self.profile(f"callback.{type(cb).__name__}.{name}"):
                getattr(cb, name)(self, *args, **kwargs)

    def _notify_exception(self, exc: BaseException) -> None:
        for cb in self.callbacks:
            try:
                with self.profile(f"callback.{type(cb).__name__}.on_exception"):
                    cb.on_exception(self, exc)
            except Exception:
                log.exception("%s.on_exception raised while handling %r", type(cb).__name__, exc)

    def _teardown(self, failure: BaseException | None) -> None:
        """Run every callback's teardown; re-raise the first error unless ``fit`` already failed."""
        first: BaseException | None = None
        for cb in self.callbacks:
            try:
                with self.profile(f"callback.{type(cb).__name__}.teardown"):
                    cb.teardown(self)
            except BaseException as exc:  # an interrupt must not skip the others' teardown
                log.exception("%s.teardown raised", type(cb).__name__)
                first = first or exc
        if first is not None and (failure is None or not isinstance(first, Exception)):
            raise first

    def _to_device(self, batch: Batch) -> Batch:
        inputs = batch.inputs.to(self.device, non_blocking=True, memory_format=self.memory_format)
        targets = batch.targets.to(self.device, non_blocking=True)
        return Batch(inputs, targets, batch.skipped)

    def _autocast(self) -> AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _unsmoothed_loss(
        self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor
    ) -> torch.Tensor:
        if self.config.label_smoothing == 0:
            return loss.detach()
        with torch.no_grad():
            return F.cross_entropy(outputs.detach().float(), targets)

    def _warn_skipped(self, batch: Batch) -> None:
        for path, reason in batch.skipped:
            if path not in self._warned_paths:
                self._warned_paths.add(path)
                warnings.warn(
                    f"skipped unreadable image: {reason}", SkippedImageWarning, stacklevel=2
                )
                log.warning("skipped unreadable image: %s", reason)


def _found_inf(
    scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer, device: torch.device
) -> torch.Tensor | None:
    """The flag GradScaler.step reads to skip a step (after ``unscale_``); None when disabled."""
    if not scaler.is_enabled():
        return None
    # PyTorch has no public accessor for it; this is the dict that GradScaler.step sums.
    per_device = scaler._found_inf_per_device(optimizer)
    found = torch.zeros((), device=device)
    for flag in per_device.values():
        found = found + flag.to(device, non_blocking=True)
    return found


def _set_epoch(loader: object, epoch: int) -> None:
    for attr in ("batch_sampler", "sampler"):
        sampler = getattr(loader, attr, None)
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
            return


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _check_sharded(loader: object, ctx: ddp.DistributedContext) -> None:
    """Refuse a breedclf loader that is not split for this process count (it would count twice)."""
    sampler = getattr(loader, "batch_sampler", None)
    replicas = getattr(sampler, "num_replicas", None)
    if replicas is not None and replicas != ctx.world_size:
        raise ConfigurationError(
            f"the loader is split for {replicas} process(es) but training runs on "
            f"{ctx.world_size}; build it with create_dataloader(..., rank={ctx.rank}, "
            f"num_replicas={ctx.world_size}) (Experiment.dataloader does)"
        )


def _rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """The global RNG states; on a GPU with an index (a DDP process) only that GPU's."""
    np_state: tuple[Any, ...] = np.random.get_state(legacy=True)  # type: ignore[assignment]
    cuda: list[torch.Tensor] = []
    if device is not None and device.type == "cuda" and device.index is not None:
        cuda = [torch.cuda.get_rng_state(device)]
    elif torch.cuda.is_available():
        cuda = torch.cuda.get_rng_state_all()
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *map(float, np_state[2:])],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    torch.set_rng_state(state["torch"].cpu())
    one_gpu = device is not None and device.type == "cuda" and device.index is not None
    if one_gpu and state["cuda"]:  # a DDP process owns one GPU: leave the others untouched
        assert device is not None and device.index is not None
        states = state["cuda"]
        torch.cuda.set_rng_state(states[min(device.index, len(states) - 1)].cpu(), device)
    elif state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy(), int(pos), int(has_gauss), float(cached)))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
