"""Register a dataset subclass and train one tiny epoch on it.

The dataset reuses the offline textures tree (``brick``/``grass``/``gravel``) but labels the
classes in upper case and orders them in reverse: a stand-in for your own folder naming rules.

Usage: ``python examples/custom_dataset.py [OUTPUT_DIR]`` (or set ``BREEDCLF_EXAMPLE_OUT``).
"""

import os
import sys
from pathlib import Path

import breedclf
from breedclf.config import DataConfig, ExperimentConfig, validate_config
from breedclf.data import ImageFolderDataset, register_dataset, write_textures


@register_dataset("shouty_textures")
class ShoutyTextures(ImageFolderDataset):
    """The textures tree, labels upper-cased, classes in reverse alphabetical order."""

    def resolve_root(self) -> Path:
        return write_textures(Path(self.config.root or "runs/custom/data"))

    def parse_class_name(self, folder: str) -> str:
        return folder.upper()

    def class_order(self, folders: list[str]) -> list[str]:
        return sorted(folders, reverse=True)


def main(out: Path) -> breedclf.RunResult:
    data = DataConfig(dataset="shouty_textures", root=out / "data", image_size=32, num_workers=0)
    config = validate_config(
        ExperimentConfig,
        {
            "name": "custom-dataset",
            "output_dir": str(out),
            "data": data.model_dump(),
            "model": {"name": "efficientnet_lite0", "weights": "DEFAULT"},
            "training": {"epochs": 1, "batch_size": 32},
        },
    )
    result = breedclf.run(breedclf.Experiment(config, progress=False))
    print(f"classes: {breedclf.load_model(result.model_dir).classes}")
    print(f"valid accuracy after 1 epoch: {result.valid['acc']:.3f}")
    return result


if __name__ == "__main__":
    default = os.environ.get("BREEDCLF_EXAMPLE_OUT", "runs/custom")
    main(Path(sys.argv[1] if len(sys.argv) > 1 else default))
