"""Experiment: composes data, model, trainer and callbacks from one :class:`ExperimentConfig`."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from torch.utils.data import DataLoader

from breedclf._device import resolve_device
from breedclf._io import atomic_path
from breedclf.config import (
    ExperimentConfig,
    config_to_dict,
    dump_config,
    flatten_config,
    load_config,
    override,
    validate_config,
)
from breedclf.data import (
    Batch,
    DatasetSplits,
    ImageDataset,
    create_dataloader,
    create_dataset,
    load_manifest,
    resolve_num_workers,
)
from breedclf.errors import (
    BreedclfError,
    CheckpointError,
    ConfigurationError,
    DatasetError,
    MissingDependencyError,
    RunExistsError,
)
from breedclf.models import ImageClassifier, create_model, load_weights
from breedclf.preprocessing import create_transform
from breedclf.profiler import Profiler
from breedclf.saved_model import METADATA_FILE, save_model
from breedclf.training import (
    Callback,
    Checkpointer,
    EarlyStopping,
    MetricsLogger,
    ProgressBar,
    Trainer,
    read_checkpoint_metadata,
)
from breedclf.training import _distributed as ddp
from breedclf.training.callbacks.registry import create_callback

__all__ = [
    "RESUME_SAFE_FIELDS",
    "Experiment",
    "RunResult",
    "config_changes",
    "ensure_logging",
    "load_experiment",
    "run",
]

CB = TypeVar("CB", bound=Callback)

log = logging.getLogger("breedclf")


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` produced."""

    model_dir: Path
    best_epoch: int
    valid: dict[str, Any]
    test: dict[str, Any] | None
    history: list[dict[str, Any]]
    rule_statuses: dict[str, str] = field(default_factory=dict)
    """Debugger rule statuses (``IssuesFound`` / ``NoIssuesFound``) by rule label."""


ResumeMode = bool | Literal["auto"]

#: Config fields that do not change what a run computes: a resume may change them freely.
RESUME_SAFE_FIELDS = (
    "name",
    "output_dir",
    "checkpoint_dir",
    "model_dir",
    "data.root",
    "data.train_root",
    "data.valid_root",
    "data.test_root",
    "data.num_workers",
    "training.device",
    "training.evaluate_test",
    "profiler",
)

CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "splits.json"
METRICS_FILE = "metrics.jsonl"


class Experiment:
    """One training run, described by an :class:`ExperimentConfig`.

    Builds the dataset splits, the pretrained model (with its new head and freeze policy), the
    data loaders and the :class:`~breedclf.training.Trainer` with the standard callbacks
    (checkpointing, metrics log, progress bar, early stopping when configured), the registered
    callbacks the config lists, and yours.

    Args:
        config: The experiment.
        callbacks: Extra callbacks (debugger rules, custom logging, ...).
        profiler: Optional timing profiler passed to the trainer.
        progress: Show progress bars (``None``: only on a terminal).

    Example:
        >>> exp = Experiment.from_yaml("configs/dogs.yaml")      # doctest: +SKIP
        >>> exp.fit()                                             # doctest: +SKIP
        >>> exp.evaluate("test")["acc"]                           # doctest: +SKIP
        >>> exp.save()                                            # doctest: +SKIP
    """

    def __init__(
        self,
        config: ExperimentConfig,
        *,
        callbacks: Sequence[Callback] = (),
        profiler: Profiler | None = None,
        progress: bool | None = None,
    ) -> None:
        self.config = config
        self.extra_callbacks = list(callbacks)
        self.profiler = profiler
        if profiler is None and config.profiler is not None:
            from breedclf.profiler import create_section_profiler

            self.profiler = create_section_profiler(config.profiler)
        self.progress = progress
        self._trainer: Trainer | None = None
        self._splits: DatasetSplits | None = None
        self._splits_source: str = "scan"
        self._model: ImageClassifier | None = None
        self._best_epoch: int | None = None

    @classmethod
    def from_yaml(cls, path: str | Path, **kwargs: Any) -> Experiment:
        """Build from a YAML config file (see :func:`breedclf.config.load_config`)."""
        return cls(load_config(path), **kwargs)

    @classmethod
    def from_saved(cls, model_dir: str | Path, **kwargs: Any) -> Experiment:
        """Rebuild the experiment of a saved model, holding its trained weights.

        Used to evaluate a saved model on a split of the data it was trained on: the splits
        are the model's own ``splits.json`` (the exact files it was trained, selected and
        tested on), never a new listing of the folder. Evaluation outputs go into
        ``model_dir``.

        Raises:
            CheckpointError: The model was saved without its experiment config, or the
                dataset's classes no longer match the model's.
            DatasetError: Files the split manifest lists are gone.
        """
        from breedclf.saved_model import CONFIG_FILE as SAVED_CONFIG
        from breedclf.saved_model import load_model

        root = Path(model_dir)
        saved = load_model(root)
        config_path = root / SAVED_CONFIG
        if not config_path.is_file():
            raise CheckpointError(
                f"{model_dir} has no {SAVED_CONFIG}: it was saved without its experiment, so "
                "its dataset is unknown"
            )
        config = override(load_config(config_path), {"output_dir": str(root)})
        experiment = cls(config, **kwargs)
        manifest = root / MANIFEST_FILE
        if manifest.is_file():
            experiment.use_manifest(manifest)
        else:
            log.warning(
                "%s has no %s (saved by an older breedclf): its splits are re-listed from %s",
                model_dir,
                MANIFEST_FILE,
                config.data.root,
            )
        if experiment.splits.classes != saved.classes:
            raise CheckpointError(
                f"the dataset at {experiment.splits.roots.get('train', config.data.root)} has "
                "classes that differ from the model's "
                f"({len(experiment.splits.classes)} vs {len(saved.classes)})"
            )
        experiment._model = saved.model
        return experiment

    # ----------------------------------------------------------------------------- pieces

    @property
    def output_dir(self) -> Path:
        """Where this run writes its metrics log, config, split manifest and evaluations."""
        return Path(self.config.output_dir)

    @property
    def checkpoint_dir(self) -> Path:
        """Checkpoints: ``last.ckpt`` (resumable) and ``best.safetensors``."""
        if self.config.checkpoint_dir is not None:
            return Path(self.config.checkpoint_dir)
        return self.output_dir / "checkpoints"

    @property
    def model_dir(self) -> Path:
        """Where :meth:`save` writes the trained model."""
        if self.config.model_dir is not None:
            return Path(self.config.model_dir)
        return self.output_dir / "model"

    @property
    def metrics_path(self) -> Path:
        """The JSONL metrics log."""
        return self.output_dir / METRICS_FILE

    @property
    def manifest_path(self) -> Path:
        """The run's split manifest (``splits.json``): which file is in which split."""
        return self.output_dir / MANIFEST_FILE

    @property
    def last_checkpoint(self) -> Path:
        """The resumable checkpoint of this run."""
        return self.checkpoint_dir / Checkpointer.LAST

    @property
    def splits(self) -> DatasetSplits:
        """Classes and the file lists of each split (listed from the data on first use)."""
        if self._splits is None:
            self._splits = create_dataset(self.config.data).load_splits()
            self._splits_source = "scan"
        return self._splits

    def use_manifest(self, path: str | Path) -> DatasetSplits:
        """Take the splits from a manifest written by an earlier run, not from the folder.

        Raises:
            DatasetError: Files it lists are gone, or its classes differ from the data's.
            CheckpointError: The model was already built for other classes.
        """
        splits = load_manifest(path, self.config.data)
        if self._model is not None and len(splits.classes) != self._model.num_classes:
            raise CheckpointError(
                f"the model was built for {self._model.num_classes} classes, the manifest "
                f"{path} lists {len(splits.classes)}"
            )
        self._splits, self._splits_source = splits, str(path)
        return splits

    @property
    def model(self) -> ImageClassifier:
        """The model: pretrained backbone, a new seeded head, freeze policy applied."""
        if self._model is None:
            cfg = self.config.model
            generator = torch.Generator().manual_seed(self.config.training.seed)
            model = create_model(
                cfg.name,
                num_classes=len(self.splits.classes),
                weights=cfg.weights,
                freeze=cfg.freeze,
                dropout=cfg.dropout,
                generator=generator,
            )
            if self.config.data.image_size is not None:
                model.preprocess = model.preprocess.with_input_size(self.config.data.image_size)
            self._model = model
        return self._model

    @property
    def device(self) -> torch.device:
        """The device training and evaluation run on (``training.device`` resolved)."""
        return resolve_device(self.config.training.device)

    @property
    def distributed(self) -> ddp.DistributedContext:
        """This process's place in a torchrun job (joined on first use; one process if none)."""
        training = self.config.training
        return ddp.init_distributed(training.distributed, training.device)

    def dataloader(self, split: str, *, train: bool | None = None) -> DataLoader[Batch]:
        """A loader for ``split``; ``train`` (default: split == "train") adds augmentation.

        Under distributed training it loads this process's share of every global batch.
        """
        is_train = split == "train" if train is None else train
        samples = self.splits.split(split)
        if not samples:
            raise DatasetError(f"the {split} split is empty")
        spec = self.model.preprocess
        augment = self.config.data.augment
        dataset = ImageDataset(
            samples,
            create_transform(spec, train=is_train, augment=augment),
            draft_size=spec.draft_size(train=is_train, augment=augment),
        )
        device = self.device
        return create_dataloader(
            dataset,
            batch_size=self.config.training.batch_size,
            shuffle=is_train,
            seed=self.config.training.seed,
            num_workers=resolve_num_workers(
                self.config.data.num_workers,
                device_type=device.type,
                processes=self.distributed.processes_per_machine(device),
            ),
            pin_memory=device.type == "cuda",
            rank=self.distributed.rank,
            num_replicas=self.distributed.world_size,
        )

    def create_callbacks(self) -> list[Callback]:
        """The run's callbacks: standard ones, the config's ``callbacks:`` list, then yours.

        Subclasses and later config sections (debugger, profiler) add theirs here.
        """
        training = self.config.training
        callbacks: list[Callback] = [
            MetricsLogger(self.metrics_path),
            Checkpointer(self.checkpoint_dir, monitor=training.monitor),
            ProgressBar(enabled=self.progress),
        ]
        if training.early_stopping is not None:
            callbacks.append(
                EarlyStopping(
                    monitor=training.monitor,
                    patience=training.early_stopping.patience,
                    min_delta=training.early_stopping.min_delta,
                )
            )
        if self.config.profiler is not None:
            from breedclf.profiler import create_profiler_callbacks

            data = self.config.data
            workers = resolve_num_workers(data.num_workers, device_type=self.device.type)
            details = {"dataset": data.dataset, "num_workers": workers}
            callbacks += create_profiler_callbacks(self.config.profiler, details=details)
        callbacks += [create_callback(spec) for spec in self.config.callbacks]
        if self.config.debugger is not None:
            from breedclf.debugger import (
                SmdebugHook,
                create_debugger,
                find_hook_config,
                smdebug_available,
            )

            pretrained = self.config.model.weights is not None
            callbacks.append(create_debugger(self.config.debugger, pretrained=pretrained))
            explicit = self.config.debugger.smdebug_config
            hook_config = find_hook_config(explicit)
            if explicit is not None and not smdebug_available():
                # Asked for by name: not silently skipped (SageMaker's own file is optional).
                raise MissingDependencyError("smdebug", "smdebug", "debugger.smdebug_config")
            if explicit is not None and not explicit.is_file():
                raise ConfigurationError(
                    f"debugger.smdebug_config: no SageMaker debug hook config at {explicit}"
                )
            if hook_config is not None and smdebug_available():
                callbacks.append(SmdebugHook(hook_config))
        return [*callbacks, *self.extra_callbacks]

    def build_trainer(self) -> Trainer:
        """Build the trainer (model on its device, optimizer, callbacks); idempotent."""
        if self._trainer is None:
            self._trainer = Trainer(
                self.model,
                training=self.config.training,
                optimizer=self.config.optimizer,
                scheduler=self.config.scheduler,
                callbacks=self.create_callbacks(),
                profiler=self.profiler,
                run_dir=self.output_dir,
                checkpoint_metadata={"config": config_to_dict(self.config)},
            )
        return self._trainer

    @property
    def trainer(self) -> Trainer:
        """The trainer :meth:`build_trainer` built (:meth:`fit` and :meth:`evaluate` build it).

        Raises:
            BreedclfError: It was not built yet.
        """
        if self._trainer is None:
            raise BreedclfError(
                "the trainer is not built yet: call experiment.build_trainer() (fit() and "
                "evaluate() do)"
            )
        return self._trainer

    def _callback(self, kind: type[CB]) -> CB:
        return next(cb for cb in self.trainer.callbacks if isinstance(cb, kind))

    # ---------------------------------------------------------------------------- actions

    def existing_run_files(self) -> list[Path]:
        """Files of an earlier run in this run's directories (empty for a fresh directory)."""
        candidates = [
            self.output_dir / CONFIG_FILE,
            self.metrics_path,
            self.manifest_path,
            *sorted(self.output_dir.glob("eval-*.json")),
            self.last_checkpoint,
            self.checkpoint_dir / Checkpointer.BEST,
            self.model_dir / METADATA_FILE,
            *_profiler_files(self.output_dir),
        ]
        return [path for path in candidates if path.is_file()]

    def _clear_previous_run(self, files: list[Path]) -> None:
        if not self.distributed.is_main:
            return
        for path in files:
            if path.parent == self.model_dir and path.name == METADATA_FILE:
                shutil.rmtree(self.model_dir)
            else:
                path.unlink(missing_ok=True)
        log.info("overwrote the previous run in %s", self.output_dir)

    def prepare(
        self,
        *,
        resume: ResumeMode = False,
        overwrite: bool = False,
        allow_config_change: bool = False,
    ) -> Path | None:
        """Check the run directory and settle where training starts; returns the checkpoint.

        Nothing is written before every check passed.

        Raises:
            RunExistsError: The directory holds a run and neither ``resume`` nor
                ``overwrite`` was given.
            CheckpointError: ``resume=True`` without a checkpoint, or the checkpoint was
                written with another config (the message lists the changed fields).
        """
        checkpoint = self.last_checkpoint
        if resume == "auto":
            resume = checkpoint.is_file()
        if resume:
            if not checkpoint.is_file():
                raise CheckpointError(
                    f"cannot resume: no checkpoint at {checkpoint}; run without --resume to "
                    "start training"
                )
            metadata = read_checkpoint_metadata(checkpoint)
            self._check_config(metadata.get("config"), checkpoint, allow_config_change)
            # The output directory may be new (a restarted container); the checkpoint
            # directory keeps a copy of the manifest for that case.
            for manifest in (self.manifest_path, self.checkpoint_dir / MANIFEST_FILE):
                if manifest.is_file():
                    self.use_manifest(manifest)
                    break
            else:
                log.warning(
                    "%s has no %s (an older run): its splits are re-listed from the data",
                    self.output_dir,
                    MANIFEST_FILE,
                )
            return checkpoint
        existing = self.existing_run_files()
        if existing and not overwrite:
            shown = ", ".join(str(p) for p in existing[:4])
            raise RunExistsError(
                f"{self.output_dir} already holds a run ({shown}). Continue it with --resume "
                "(resume=True), replace it with --overwrite (overwrite=True: deletes that run's "
                "checkpoints, metrics and model), or choose another output_dir"
            )
        if existing:
            self._clear_previous_run(existing)
        return None

    def _check_config(self, saved: Any, checkpoint: Path, allow_config_change: bool) -> None:
        if not isinstance(saved, dict):
            log.warning("%s records no config (an older breedclf): not checked", checkpoint)
            return
        changes = config_changes(saved, self.config)
        if not changes:
            return
        listing = "\n".join(f"  {change}" for change in changes)
        if not allow_config_change:
            raise CheckpointError(
                f"cannot resume {checkpoint}: the config differs from the one it was trained "
                f"with:\n{listing}\nRestore those values, or pass --allow-config-change "
                "(allow_config_change=True) if the change is deliberate (e.g. more epochs)"
            )
        log.warning("resuming with a changed config (allowed):\n%s", listing)

    def fit(
        self,
        *,
        resume: ResumeMode = False,
        overwrite: bool = False,
        allow_config_change: bool = False,
    ) -> list[dict[str, Any]]:
        """Train, then load the best epoch's weights (chosen on the validation split).

        Args:
            resume: ``True`` continues from the last checkpoint (an error without one);
                ``"auto"`` continues if there is one and starts otherwise (a container that
                may be restarted, such as a SageMaker spot job).
            overwrite: Replace a previous run in the same directories instead of refusing.
            allow_config_change: Resume even though fields that affect training changed.

        Raises:
            RunExistsError: The directory already holds a run (see :meth:`prepare`).
            CheckpointError: Nothing to resume, or the config changed.
        """
        ensure_logging()
        dist = self.distributed
        resume_from = self.prepare(
            resume=resume, overwrite=overwrite, allow_config_change=allow_config_change
        )
        if dist.enabled:  # every rank checked the directory before rank 0 writes into it
            ddp.barrier()
        splits = self.splits  # listed (or read from the manifest) before anything is written
        if dist.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            dump_config(self.config, self.output_dir / CONFIG_FILE)
            for manifest in (self.manifest_path, self.checkpoint_dir / MANIFEST_FILE):
                if not manifest.is_file():
                    splits.write_manifest(manifest)
        trainer = self.build_trainer()
        valid = self.dataloader("valid") if splits.valid else None
        history = trainer.fit(self.dataloader("train"), valid, resume_from=resume_from)
        best_epoch = 0
        if dist.is_main:
            checkpointer = self._callback(Checkpointer)
            best_epoch = checkpointer.best_epoch
            if checkpointer.best_path.is_file():
                from safetensors.torch import load_file

                load_weights(self.model, load_file(str(checkpointer.best_path)))
                log.info("selected epoch %d by %s", best_epoch, checkpointer.monitor)
        if dist.enabled:  # rank 0 read the best weights; every rank evaluates them
            ddp.broadcast_module(self.model)
            self._best_epoch = ddp.broadcast_object(best_epoch)
        return history

    @property
    def best_epoch(self) -> int:
        """The epoch whose weights the model holds after :meth:`fit`."""
        if self._best_epoch is not None:  # distributed: rank 0's, on every rank
            return self._best_epoch
        return self._callback(Checkpointer).best_epoch

    def evaluate(self, split: str = "valid") -> dict[str, Any]:
        """Loss, top-1/top-5, per-class accuracy and confusion matrix of the model on ``split``.

        The result is logged (``split=<split> loss=... acc=...``), appended to the metrics log
        and written to ``output_dir/eval-<split>.json``. Under distributed training every rank
        evaluates its share and gets the metrics of the whole split; rank 0 writes them.
        """
        ensure_logging()
        trainer = self.build_trainer()
        metrics = trainer.evaluate(self.dataloader(split, train=False), full=True)
        metrics["classes"] = self.splits.classes
        if not self.distributed.is_main:
            return metrics
        self._callback(MetricsLogger).log_evaluation(split, _headline(metrics))
        with atomic_path(self.output_dir / f"eval-{split}.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=1), encoding="utf-8")
        return metrics

    def save(self, directory: str | Path | None = None, **metrics: Any) -> Path:
        """Save the model with labels, preprocessing, config and split manifest.

        The default place is :attr:`model_dir` (``output_dir/model`` unless configured). Under
        distributed training only rank 0 writes; every rank returns the path.
        """
        target = Path(directory) if directory is not None else self.model_dir
        if not self.distributed.is_main:
            return target
        return save_model(
            self.model,
            self.splits.classes,
            target,
            config=self.config,
            metrics=metrics,
            splits=self.splits,
        )


def config_changes(saved: dict[str, Any], current: ExperimentConfig) -> list[str]:
    """Fields that affect training and differ between a checkpoint's config and ``current``.

    Fields in :data:`RESUME_SAFE_FIELDS` (paths, device, ...) are not compared. Each entry
    reads ``"training.batch_size: 16 -> 32"``.
    """
    try:
        old = flatten_config(validate_config(ExperimentConfig, saved))
    except ConfigurationError as exc:
        return [f"the checkpoint's config is not valid with this breedclf: {exc}"]
    new = flatten_config(current)
    changes = []
    for key in [*new, *(k for k in old if k not in new)]:
        if any(key == safe or key.startswith(safe + ".") for safe in RESUME_SAFE_FIELDS):
            continue
        before, after = old.get(key, "(absent)"), new.get(key, "(absent)")
        if before != after:
            changes.append(f"{key}: {before} -> {after}")
    return changes


_LOG_HANDLER_FLAG = "_breedclf_default_handler"


def ensure_logging() -> None:
    """Show breedclf's progress and metric lines when nothing else was configured.

    In a notebook or a plain script no logging is set up, so the INFO lines (``epoch=1
    split=valid ...``) would vanish; then a handler printing them to stdout is added to the
    ``breedclf`` logger, once. An application that configures logging keeps full control (its
    handlers are used; ``logging.getLogger("breedclf").setLevel(logging.WARNING)`` silences).
    """
    logger = logging.getLogger("breedclf")
    if logger.hasHandlers():
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    setattr(handler, _LOG_HANDLER_FLAG, True)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def load_experiment(path: str | Path, **kwargs: Any) -> Experiment:
    """Build an :class:`Experiment` from a YAML file."""
    return Experiment.from_yaml(path, **kwargs)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("loss", "acc", "top5", "count") if k in metrics}


def run(
    experiment: Experiment,
    *,
    resume: ResumeMode = False,
    overwrite: bool = False,
    allow_config_change: bool = False,
) -> RunResult:
    """Train, select by validation, optionally test once, and save — the whole job.

    The CLI's ``breedclf train`` calls this; so will the SageMaker entry point. For a container
    that may be restarted (spot capacity), use ``resume="auto"`` with ``checkpoint_dir`` on
    storage that survives the restart and ``model_dir`` where the platform collects the model.

    Args:
        experiment: What to run.
        resume: ``True``, ``False`` or ``"auto"`` (see :meth:`Experiment.fit`).
        overwrite: Replace a previous run in the same directories instead of refusing.
        allow_config_change: Resume even though fields that affect training changed.

    Raises:
        RunExistsError: The output directory already holds a run.
        CheckpointError: Nothing to resume, or the config changed since the checkpoint.
    """
    history = experiment.fit(
        resume=resume, overwrite=overwrite, allow_config_change=allow_config_change
    )
    valid = experiment.evaluate("valid") if experiment.splits.valid else {}
    test = None
    if experiment.config.training.evaluate_test and experiment.splits.test:
        test = experiment.evaluate("test")
    metrics: dict[str, Any] = {"best_epoch": experiment.best_epoch, "valid": _headline(valid)}
    if test is not None:
        metrics["test"] = _headline(test)
    statuses = _rule_statuses(experiment)
    if statuses:
        metrics["debugger"] = statuses
        experiment._callback(MetricsLogger)._append({"event": "debugger", "rules": statuses})
    model_dir = experiment.save(**metrics)
    if experiment.distributed.enabled:  # every rank returns once the model is saved
        ddp.barrier()
    log.info("saved model to %s", model_dir)
    profiler = experiment.config.profiler
    if profiler is not None and profiler.report and experiment.distributed.is_main:
        _write_report(experiment.output_dir)
    return RunResult(model_dir, experiment.best_epoch, valid, test, history, statuses)


def _profiler_files(output_dir: Path) -> list[Path]:
    from breedclf.profiler._data import PROFILER_DIR
    from breedclf.profiler._report import REPORT_FILE

    folder = output_dir / PROFILER_DIR
    return [output_dir / REPORT_FILE, *(sorted(folder.iterdir()) if folder.is_dir() else [])]


def _write_report(output_dir: Path) -> None:
    from breedclf.profiler._report import Report

    try:
        path = Report(output_dir).write()
    except MissingDependencyError as exc:
        log.warning("report.html not written: %s", exc)
        return
    log.info("wrote the training report %s", path)


def _rule_statuses(experiment: Experiment) -> dict[str, str]:
    from breedclf.debugger import Debugger

    statuses: dict[str, str] = {}
    for callback in experiment.trainer.callbacks:
        if isinstance(callback, Debugger):
            statuses.update(callback.statuses)
    return statuses
