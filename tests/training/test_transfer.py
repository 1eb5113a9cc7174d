"""Real transfer learning: ImageNet weights beat random init on a small real dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from breedclf.config import ExperimentConfig, validate_config
from breedclf.data import SkippedImageWarning
from breedclf.experiment import Experiment, run
from tests.conftest import jpeg_bytes


def _experiment(root: Path, out: Path, weights: str | None, **training: Any) -> Experiment:
    config = validate_config(
        ExperimentConfig,
        {
            "output_dir": str(out),
            "data": {"dataset": "textures", "root": str(root), "image_size": 64, "num_workers": 0},
            "model": {"name": "efficientnet_lite0", "weights": weights},
            "optimizer": {"name": "adamw", "lr": 2e-3, "backbone_lr": 5e-4},
            "training": {"epochs": 2, "batch_size": 16, "seed": 0, **training},
        },
    )
    return Experiment(config, progress=False)


def test_pretrained_beats_random_init(textures_root: Path, tmp_path: Path) -> None:
    pretrained = run(_experiment(textures_root, tmp_path / "pre", "DEFAULT", evaluate_test=True))
    scratch = run(_experiment(textures_root, tmp_path / "rand", None, evaluate_test=True))
    assert pretrained.test is not None
    assert scratch.test is not None
    assert pretrained.test["acc"] >= 0.9
    assert pretrained.test["acc"] >= scratch.test["acc"] + 0.2


def test_training_skips_corrupt_images_with_a_warning(textures_root: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "data"
    shutil.copytree(textures_root, root)
    good = (root / "train" / "brick" / "brick_train_000.png").read_bytes()
    (root / "train" / "brick" / "zz_truncated.png").write_bytes(good[: len(good) // 3])
    (root / "train" / "grass" / "zz_not_an_image.jpg").write_bytes(b"<html>404</html>")
    from PIL import Image

    (root / "valid" / "gravel" / "zz_cmyk.jpg").write_bytes(
        jpeg_bytes(Image.new("CMYK", (80, 80), (10, 20, 30, 40)))
    )
    experiment = _experiment(root, tmp_path / "out", "DEFAULT", epochs=1)
    with pytest.warns(SkippedImageWarning) as caught:
        history = experiment.fit()
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "zz_truncated.png is corrupt or truncated" in messages[0]  # train/brick sorts first
    assert "zz_not_an_image.jpg is not a recognised image format" in messages[1]
    assert history[0]["train"]["count"] == 180  # the two bad files are left out, nothing else
    assert history[0]["valid"]["count"] == 46  # the CMYK JPEG is fine
