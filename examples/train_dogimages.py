"""Train a breed classifier on Udacity's dogImages with the public breedclf API.

Usage::

    python examples/train_dogimages.py path/to/dogImages            # frozen ResNet-50 baseline
    python examples/train_dogimages.py examples/configs/dogimages_finetune.yaml

A ``.yaml`` argument is loaded as an experiment config; anything else is taken as the dogImages
root (the folder holding ``train/ valid/ test/``) and a quick frozen-backbone config is built.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import breedclf
from breedclf.config import ExperimentConfig, load_config, validate_config


def dogimages_config(root: Path) -> ExperimentConfig:
    """Frozen ImageNet ResNet-50 with a new 133-way head: the quick baseline."""
    return validate_config(
        ExperimentConfig,
        {
            "name": "dogimages-resnet50-frozen",
            "output_dir": "runs/dogimages-resnet50-frozen",
            "data": {"dataset": "dogimages", "root": str(root)},
            "model": {"name": "resnet50", "weights": "DEFAULT", "freeze": {"policy": "backbone"}},
            "optimizer": {"name": "adamw", "lr": 1e-3},
            "scheduler": {"name": "cosine", "warmup_epochs": 0.5},
            "training": {"epochs": 5, "batch_size": 64, "evaluate_test": True},
        },
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    arg = Path(argv[0])
    config = load_config(arg) if arg.suffix in {".yaml", ".yml"} else dogimages_config(arg)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = breedclf.run(breedclf.Experiment(config))
    print(f"best epoch {result.best_epoch}: valid accuracy {result.valid['acc']:.4f}")
    if result.test is not None:
        print(f"test accuracy {result.test['acc']:.4f}")
    print(f"saved model: {result.model_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
