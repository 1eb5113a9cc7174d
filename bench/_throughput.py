"""Training throughput of one offline run (textures, pretrained Lite0): the overhead benchmarks'
shared measurement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from breedclf.config import ExperimentConfig, validate_config
from breedclf.experiment import Experiment


def throughput(root: Path, out: Path, *, epochs: int, size: int, **sections: Any) -> float:
    """Images per second of the training epochs (validation excluded).

    ``sections`` are experiment config sections that differ between the settings compared
    (``debugger=...``, ``profiler=...``).
    """
    config = validate_config(
        ExperimentConfig,
        {
            "output_dir": str(out),
            "data": {"dataset": "textures", "root": str(root), "image_size": size},
            "model": {"name": "efficientnet_lite0", "weights": "DEFAULT"},
            "training": {"epochs": epochs, "batch_size": 16, "seed": 0},
            **sections,
        },
    )
    history = Experiment(config, progress=False).fit()
    images = float(sum(h["train"]["count"] for h in history))
    return images / float(sum(h["seconds"] for h in history))
