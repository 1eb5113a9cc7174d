"""Experiment: composes data, model, trainer and callbacks from one :class:`ExperimentConfig`."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from breedclf._io import atomic_path
from breedclf.config import ExperimentConfig, dump_config, load_config, override
from breedclf.data import (
    Batch,
    DatasetSplits,
    ImageDataset,
    create_dataloader,
    create_dataset,
    resolve_num_workers,
)
from breedclf.errors import CheckpointError, DatasetError
from breedclf.models import ImageClassifier, create_model, load_weights
from breedclf.preprocessing import create_transform
from breedclf.profiler import Profiler
from breedclf.saved_model import save_model
from breedclf.training import (
    Callback,
    Checkpointer,
    EarlyStopping,
    MetricsLogger,
    ProgressBar,
    Trainer,
)

__all__ = ["Experiment", "RunResult", "load_experiment", "run"]

log = logging.getLogger("breedclf")


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` produced."""

    model_dir: Path
    best_epoch: int
    valid: dict[str, Any]
    test: dict[str, Any] | None
    history: list[dict[str, Any]]


class Experiment:
    """One training run, described by an :class:`ExperimentConfig`.

    Builds the dataset, the pretrained model (with its new head and freeze policy), the data
    loaders and the :class:`~breedclf.training.Trainer` with the standard callbacks
    (checkpointing, metrics log, progress bar, early stopping when configured) plus yours.

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
        self.progress = progress
        self._trainer: Trainer | None = None

    @classmethod
    def from_yaml(cls, path: str | Path, **kwargs: Any) -> Experiment:
        """Build from a YAML config file (see :func:`breedclf.config.load_config`)."""
        return cls(load_config(path), **kwargs)

    @classmethod
    def from_saved(cls, model_dir: str | Path, **kwargs: Any) -> Experiment:
        """Rebuild the experiment of a saved model, holding its trained weights.

        Used to evaluate a saved model on a split of the data it was trained on; evaluation
        outputs are written into ``model_dir``.

        Raises:
            CheckpointError: The model was saved without its experiment config, or the dataset's
                classes no longer match the model's.
        """
        from breedclf.saved_model import CONFIG_FILE, load_model

        saved = load_model(model_dir)
        config_path = Path(model_dir) / CONFIG_FILE
        if not config_path.is_file():
            raise CheckpointError(
                f"{model_dir} has no {CONFIG_FILE}: it was saved without its experiment, so its "
                "dataset is unknown"
            )
        config = override(load_config(config_path), {"output_dir": str(model_dir)})
        experiment = cls(config, **kwargs)
        if experiment.splits.classes != saved.classes:
            raise CheckpointError(
                f"the dataset at {config.data.root} has classes that differ from the model's "
                f"({len(experiment.splits.classes)} vs {len(saved.classes)})"
            )
        experiment.__dict__["model"] = saved.model  # fills the cached_property
        return experiment

    # ----------------------------------------------------------------------------- pieces

    @property
    def output_dir(self) -> Path:
        """Where this run writes everything."""
        return Path(self.config.output_dir)

    @property
    def checkpoint_dir(self) -> Path:
        """Checkpoints: ``last.ckpt`` (resumable) and ``best.safetensors``."""
        return self.output_dir / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        """The JSONL metrics log."""
        return self.output_dir / "metrics.jsonl"

    @cached_property
    def splits(self) -> DatasetSplits:
        """Classes and the file lists of each split."""
        return create_dataset(self.config.data).load_splits()

    @cached_property
    def model(self) -> ImageClassifier:
        """The model: pretrained backbone, a new seeded head, freeze policy applied."""
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
        return model

    def dataloader(self, split: str, *, train: bool | None = None) -> DataLoader[Batch]:
        """A loader for ``split``; ``train`` (default: split == "train") adds augmentation."""
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
        return create_dataloader(
            dataset,
            batch_size=self.config.training.batch_size,
            shuffle=is_train,
            seed=self.config.training.seed,
            num_workers=resolve_num_workers(
                self.config.data.num_workers, device_type=self.trainer.device.type
            ),
            pin_memory=self.trainer.device.type == "cuda",
        )

    @property
    def trainer(self) -> Trainer:
        """The trainer (built on first use)."""
        if self._trainer is None:
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
            self._trainer = Trainer(
                self.model,
                training=training,
                optimizer=self.config.optimizer,
                scheduler=self.config.scheduler,
                callbacks=[*callbacks, *self.extra_callbacks],
                profiler=self.profiler,
            )
        return self._trainer

    def _callback(self, kind: type[Callback]) -> Any:
        return next(cb for cb in self.trainer.callbacks if isinstance(cb, kind))

    # ---------------------------------------------------------------------------- actions

    def fit(self, *, resume: bool = False) -> list[dict[str, Any]]:
        """Train, then load the best epoch's weights (chosen on the validation split).

        Args:
            resume: Continue from ``output_dir/checkpoints/last.ckpt``.

        Raises:
            CheckpointError: ``resume`` was asked but there is no checkpoint.
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        dump_config(self.config, self.output_dir / "config.yaml")
        checkpointer: Checkpointer = self._callback(Checkpointer)
        resume_from = None
        if resume:
            if not checkpointer.last_path.is_file():
                raise CheckpointError(
                    f"cannot resume: no checkpoint at {checkpointer.last_path}; "
                    "run without --resume to start training"
                )
            resume_from = checkpointer.last_path
        valid = self.dataloader("valid") if self.splits.valid else None
        history = self.trainer.fit(self.dataloader("train"), valid, resume_from=resume_from)
        if checkpointer.best_path.is_file():
            from safetensors.torch import load_file

            load_weights(self.model, load_file(str(checkpointer.best_path)))
            log.info("selected epoch %d by %s", checkpointer.best_epoch, checkpointer.monitor)
        return history

    @property
    def best_epoch(self) -> int:
        """The epoch whose weights the model holds after :meth:`fit`."""
        checkpointer: Checkpointer = self._callback(Checkpointer)
        return checkpointer.best_epoch

    def evaluate(self, split: str = "valid") -> dict[str, Any]:
        """Loss, top-1/top-5, per-class accuracy and confusion matrix of the model on ``split``.

        The result is logged (``split=<split> loss=... acc=...``), appended to the metrics log
        and written to ``output_dir/eval-<split>.json``.
        """
        metrics = self.trainer.evaluate(self.dataloader(split, train=False), full=True)
        metrics["classes"] = self.splits.classes
        logger: MetricsLogger = self._callback(MetricsLogger)
        logger.log_evaluation(split, _headline(metrics))
        with atomic_path(self.output_dir / f"eval-{split}.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=1), encoding="utf-8")
        return metrics

    def save(self, directory: str | Path | None = None, **metrics: Any) -> Path:
        """Save the model with labels, preprocessing and config (default ``output_dir/model``)."""
        target = Path(directory) if directory is not None else self.output_dir / "model"
        return save_model(
            self.model, self.splits.classes, target, config=self.config, metrics=metrics
        )


def load_experiment(path: str | Path, **kwargs: Any) -> Experiment:
    """Build an :class:`Experiment` from a YAML file."""
    return Experiment.from_yaml(path, **kwargs)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("loss", "acc", "top5", "count") if k in metrics}


def run(experiment: Experiment, *, resume: bool = False) -> RunResult:
    """Train, select by validation, optionally test once, and save — the whole job.

    The CLI's ``breedclf train`` and the SageMaker entry point both call this.
    """
    history = experiment.fit(resume=resume)
    valid = experiment.evaluate("valid") if experiment.splits.valid else {}
    test = None
    if experiment.config.training.evaluate_test and experiment.splits.test:
        test = experiment.evaluate("test")
    metrics: dict[str, Any] = {"best_epoch": experiment.best_epoch, "valid": _headline(valid)}
    if test is not None:
        metrics["test"] = _headline(test)
    model_dir = experiment.save(**metrics)
    log.info("saved model to %s", model_dir)
    return RunResult(model_dir, experiment.best_epoch, valid, test, history)
