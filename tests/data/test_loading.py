"""Training batches: a lone last sample is dropped, everything else stays deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest

from breedclf.config import DataConfig
from breedclf.data import ImageDataset, create_dataloader, create_dataset
from breedclf.data._loading import EpochBatchSampler, EpochSampler
from breedclf.preprocessing import PreprocessSpec, create_transform


def _batches(size: int, batch_size: int, *, drop: bool, epoch: int = 1) -> list[list[int]]:
    sampler = EpochBatchSampler(
        EpochSampler(size, seed=3, shuffle=True), batch_size, drop_single_last=drop
    )
    sampler.set_epoch(epoch)
    batches = [[index for index, _ in batch] for batch in sampler]
    assert len(sampler) == len(batches)
    return batches


@pytest.mark.parametrize(
    ("size", "batch_size", "drop", "sizes"),
    [
        pytest.param(9, 4, True, [4, 4], id="lone-last-dropped"),
        pytest.param(9, 4, False, [4, 4, 1], id="evaluation-keeps-it"),
        pytest.param(10, 4, True, [4, 4, 2], id="two-left-kept"),
        pytest.param(8, 4, True, [4, 4], id="exact"),
        pytest.param(3, 1, True, [1, 1, 1], id="batch-size-one-keeps-all"),
    ],
)
def test_batch_sizes(size: int, batch_size: int, drop: bool, sizes: list[int]) -> None:
    assert [len(b) for b in _batches(size, batch_size, drop=drop)] == sizes


def test_dropping_keeps_order_and_seeds_of_the_rest() -> None:
    kept = _batches(9, 4, drop=True, epoch=2)
    full = _batches(9, 4, drop=False, epoch=2)
    assert kept == full[:2]
    assert _batches(9, 4, drop=True, epoch=2) == kept  # a pure function of (seed, epoch)
    dropped = {_batches(9, 4, drop=False, epoch=e)[-1][0] for e in range(1, 9)}
    assert len(dropped) > 1  # shuffling drops a different image from epoch to epoch


def test_training_loaders_drop_a_lone_last_image(textures_root: Path) -> None:
    splits = create_dataset(DataConfig(dataset="textures", root=textures_root)).load_splits()
    spec = PreprocessSpec(input_size=32, resize_size=32)
    dataset = ImageDataset(splits.train[:9], create_transform(spec, train=False))

    def sizes(shuffle: bool) -> list[int]:
        loader = create_dataloader(
            dataset, batch_size=4, shuffle=shuffle, seed=0, num_workers=0, pin_memory=False
        )
        return [len(batch) for batch in loader]

    assert sizes(shuffle=True) == [4, 4]
    assert sizes(shuffle=False) == [4, 4, 1]
