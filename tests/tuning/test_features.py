"""Cached frozen-backbone training gives the same model as training through the backbone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from breedclf.config import ExperimentConfig, override, validate_config
from breedclf.experiment import Experiment, run
from breedclf.tuning import CachedFeatureExperiment, uses_feature_cache
from tests.tuning.conftest import tiny_experiment


def config(root: Path, out: Path) -> ExperimentConfig:
    # Dropout stays on (Lite0's 0.2): the cached run must draw the same masks too.
    return override(
        validate_config(ExperimentConfig, tiny_experiment(root, epochs=2)),
        {"output_dir": str(out), "optimizer.lr": 1e-2},
    )


def test_cached_training_equals_uncached(textures_root: Path, tmp_path: Path) -> None:
    plain = run(Experiment(config(textures_root, tmp_path / "plain"), progress=False))
    cache = tmp_path / "features"
    cached = run(
        CachedFeatureExperiment(
            config(textures_root, tmp_path / "cached"), cache_dir=cache, progress=False
        )
    )
    for a, b in zip(plain.history, cached.history, strict=True):
        assert a["train"]["loss"] == pytest.approx(b["train"]["loss"], rel=1e-4, abs=1e-5)
        assert a["valid"]["loss"] == pytest.approx(b["valid"]["loss"], rel=1e-4, abs=1e-5)
        assert a["valid"]["acc"] == b["valid"]["acc"]
    assert plain.valid["acc"] == cached.valid["acc"]
    # The cached run saves the complete model: the same backbone and (up to float) the same head.
    full = load_file(str(plain.model_dir / "model.safetensors"))
    part = load_file(str(cached.model_dir / "model.safetensors"))
    assert full.keys() == part.keys()
    for key, value in full.items():
        torch.testing.assert_close(part[key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert len(list(cache.glob("*.safetensors"))) == 2  # train and valid features


def test_features_are_computed_once_per_dataset(textures_root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "features"
    first = CachedFeatureExperiment(config(textures_root, tmp_path / "a"), cache_dir=cache)
    features, skipped = first.features("valid", train=False)
    assert features.shape == (len(first.splits.valid), first.full_model.num_features)
    assert skipped == {}
    files = {p: p.stat().st_mtime_ns for p in cache.glob("*.safetensors")}
    # Another trial (other lr, batch size) reuses them; another input size does not.
    same = override(config(textures_root, tmp_path / "b"), {"training.batch_size": 16})
    CachedFeatureExperiment(same, cache_dir=cache).features("valid", train=False)
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.safetensors")} == files
    other = override(same, {"data.image_size": 40})
    CachedFeatureExperiment(other, cache_dir=cache).features("valid", train=False)
    assert len(list(cache.glob("*.safetensors"))) == 2


def test_only_frozen_unaugmented_trials_qualify(textures_root: Path, tmp_path: Path) -> None:
    base = config(textures_root, tmp_path)
    assert uses_feature_cache(base)
    assert not uses_feature_cache(override(base, {"model.freeze.policy": "none"}))
    assert not uses_feature_cache(override(base, {"data.augment.hflip": True}))
    assert not uses_feature_cache(override(base, {"data.augment.scale": [0.5, 1.0]}))
    with pytest.raises(ValueError, match=r"freeze\.policy=backbone and no augmentation"):
        CachedFeatureExperiment(override(base, {"model.freeze.policy": "none"}), cache_dir=tmp_path)
