"""Frozen-backbone trials on cached features: the backbone runs once per study, not per epoch.

A trial qualifies when its whole backbone is frozen and its training transform is
deterministic (no augmentation: ``data.augment`` with ``scale: [1.0, 1.0]``, ``hflip: false``,
``color_jitter: 0``; the random crop then always takes the whole image). A frozen backbone
runs in eval mode (fixed BatchNorm statistics, no stochastic depth), so its features of an
image never change: they are computed once, stored under ``study_dir/features``, and such
trials train only the dropout + linear head on them. The saved model is the complete one
(backbone + trained head), exactly what uncached training saves.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset

import breedclf
from breedclf._device import resolve_amp
from breedclf._io import atomic_path
from breedclf.config import ExperimentConfig
from breedclf.data import (
    Batch,
    EpochSampler,
    ImageDataset,
    Sample,
    collate_batch,
    create_dataloader,
    resolve_num_workers,
)
from breedclf.data._loading import EpochBatchSampler, _Skipped
from breedclf.experiment import Experiment
from breedclf.models import ImageClassifier
from breedclf.preprocessing import create_transform
from breedclf.saved_model import save_model

__all__ = ["CachedFeatureExperiment", "uses_feature_cache"]


def uses_feature_cache(config: ExperimentConfig) -> bool:
    """Whether a trial of ``config`` can train on cached backbone features."""
    augment = config.data.augment
    return (
        config.model.freeze.policy == "backbone"
        and tuple(augment.scale) == (1.0, 1.0)
        and not augment.hflip
        and augment.color_jitter == 0
    )


class _FeatureDataset(Dataset[tuple[torch.Tensor, int] | _Skipped]):
    """Cached features as ``[F, 1, 1]`` "images", indexed like :class:`ImageDataset`."""

    def __init__(
        self, features: torch.Tensor, samples: Sequence[Sample], skipped: dict[int, str]
    ) -> None:
        self.features = features
        self.samples = list(samples)
        self.skipped = skipped

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int] | _Skipped:
        index = item[0] if isinstance(item, tuple) else item
        if index in self.skipped:
            return _Skipped(str(self.samples[index].path), self.skipped[index])
        return self.features[index].view(-1, 1, 1), self.samples[index].target


class CachedFeatureExperiment(Experiment):
    """An :class:`~breedclf.experiment.Experiment` whose frozen backbone runs once per dataset.

    Training, validation and evaluation see the backbone's cached pooled features; the model
    trained is a backbone-less view sharing the full model's dropout and head, and
    :meth:`save` saves the full model.

    Args:
        config: A qualifying experiment (see :func:`uses_feature_cache`).
        cache_dir: Where features are stored, shared by every trial of a study.
        **kwargs: As for :class:`~breedclf.experiment.Experiment`.

    Raises:
        ValueError: ``config`` does not qualify.
    """

    def __init__(self, config: ExperimentConfig, *, cache_dir: str | Path, **kwargs: Any) -> None:
        if not uses_feature_cache(config):
            raise ValueError(
                "cached features need model.freeze.policy=backbone and no augmentation "
                "(data.augment.scale=[1.0, 1.0], hflip=false, color_jitter=0)"
            )
        super().__init__(config, **kwargs)
        self.cache_dir = Path(cache_dir)
        self._head_model: ImageClassifier | None = None

    @property
    def full_model(self) -> ImageClassifier:
        """The complete model (frozen backbone and the trained head)."""
        return super().model

    @property
    def model(self) -> ImageClassifier:
        """The backbone-less view that trains: pooling, the shared dropout and head."""
        if self._head_model is None:
            full = self.full_model
            view = ImageClassifier(
                arch=full.arch,
                stages=[],
                num_features=full.num_features,
                num_classes=full.num_classes,
                preprocess=full.preprocess,
            )
            view.dropout = full.dropout
            view.head = full.head
            self._head_model = view
        return self._head_model

    def dataloader(self, split: str, *, train: bool | None = None) -> DataLoader[Batch]:
        """A loader of ``split``'s cached features, batched exactly as the image loader is."""
        is_train = split == "train" if train is None else train
        samples = self.splits.split(split)
        features, skipped = self.features(split, train=is_train)
        dataset = _FeatureDataset(features, samples, skipped)
        seed = self.config.training.seed
        sampler = EpochSampler(len(dataset), seed=seed, shuffle=is_train)
        batches = EpochBatchSampler(
            sampler, self.config.training.batch_size, drop_single_last=is_train
        )
        return DataLoader(
            dataset,  # type: ignore[arg-type]  # indexed by (index, seed) like ImageDataset
            batch_sampler=batches,
            collate_fn=collate_batch,
            generator=torch.Generator().manual_seed(seed),
        )

    def save(self, directory: str | Path | None = None, **metrics: Any) -> Path:
        """Save the full model (backbone + trained head), as an uncached run does."""
        target = Path(directory) if directory is not None else self.model_dir
        return save_model(
            self.full_model,
            self.splits.classes,
            target,
            config=self.config,
            metrics=metrics,
            splits=self.splits,
        )

    # ---------------------------------------------------------------------------- the cache

    def cache_key(self, split: str, *, train: bool) -> str:
        """Hash of what the features depend on: model, weights, preprocessing, transform,
        numerics and the split's file contents."""
        model = self.full_model
        cfg = self.config
        digest = hashlib.sha256()
        facts = {
            "breedclf": breedclf.__version__,
            "torch": torch.__version__,
            "arch": model.arch,
            "weights": cfg.model.weights,
            "preprocess": model.preprocess.model_dump(mode="json"),
            "transform": "train" if train else "eval",
            "augment": cfg.data.augment.model_dump(mode="json") if train else None,
            "device": self.device.type,
            "amp": str(resolve_amp(cfg.training.amp, self.device)),
            "channels_last": cfg.training.channels_last,
            "classes": self.splits.classes,
            "split": split,
        }
        digest.update(json.dumps(facts, sort_keys=True).encode())
        for sample in self.splits.split(split):
            digest.update(f"{sample.target}:".encode())
            digest.update(_file_digest(sample.path))
        return digest.hexdigest()[:32]

    def features(self, split: str, *, train: bool) -> tuple[torch.Tensor, dict[int, str]]:
        """``[N, num_features]`` features of ``split`` and the unreadable samples' reasons.

        Computed once per key under a file lock, so parallel trials wait for the first one.
        """
        key = self.cache_key(split, train=train)
        path = self.cache_dir / f"{split}-{key}.safetensors"
        with _locked(self.cache_dir / f"{split}-{key}.lock"):
            if not path.is_file():
                features, skipped = self._compute(split, train=train)
                with atomic_path(path) as tmp:
                    save_file(
                        {"features": features.contiguous()},
                        str(tmp),
                        metadata={"skipped": json.dumps(skipped)},
                    )
        loaded = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata() or {}
        skipped_map = {int(k): v for k, v in json.loads(meta.get("skipped", "{}")).items()}
        return loaded["features"], skipped_map

    def _compute(self, split: str, *, train: bool) -> tuple[torch.Tensor, dict[str, str]]:
        model = self.full_model
        device = self.device
        memory_format = (
            torch.preserve_format
            if self.config.training.channels_last == "off"
            else torch.channels_last
        )
        model.to(device).to(memory_format=memory_format)
        was_training = model.training
        model.eval()
        samples = self.splits.split(split)
        spec = model.preprocess
        augment = self.config.data.augment
        dataset = ImageDataset(
            samples,
            create_transform(spec, train=train, augment=augment),
            draft_size=spec.draft_size(train=train, augment=augment),
        )
        batch_size = self.config.training.batch_size
        loader = create_dataloader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            seed=self.config.training.seed,
            num_workers=resolve_num_workers(self.config.data.num_workers, device_type=device.type),
            pin_memory=device.type == "cuda",
            drop_single_last=False,
        )
        amp = resolve_amp(self.config.training.amp, device)
        out = torch.zeros(len(samples), model.num_features)
        skipped: dict[str, str] = {}
        start = 0
        with torch.no_grad():
            for batch in loader:
                indices = range(start, min(start + batch_size, len(samples)))
                start += batch_size
                missing = dict(batch.skipped)
                kept = [i for i in indices if str(samples[i].path) not in missing]
                skipped.update(
                    {str(i): missing[str(samples[i].path)] for i in indices if i not in kept}
                )
                if not kept:
                    continue
                inputs = batch.inputs.to(device, memory_format=memory_format)
                with torch.autocast(device.type, dtype=amp) if amp else _nothing():
                    feats = model.forward_features(inputs)
                out[kept] = feats.float().cpu()
        model.train(was_training)
        return out, skipped


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock held through ``path`` (released by the OS if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _file_digest(path: Path) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()
