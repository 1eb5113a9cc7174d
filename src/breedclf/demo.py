"""The offline demo: fine-tune pretrained EfficientNet-Lite0 on real photographs, end to end."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from breedclf.config import ExperimentConfig, override, validate_config
from breedclf.experiment import Experiment, RunResult, run
from breedclf.saved_model import Prediction, load_model

__all__ = ["DEMO_NAME", "DemoResult", "demo_config", "is_demo_run", "run_demo"]


@dataclass(frozen=True)
class DemoResult:
    """The demo's run, timing and a few labelled held-out predictions."""

    run: RunResult
    seconds: float
    samples: list[tuple[Path, str, list[Prediction]]]
    random_init: RunResult | None = None
    """The same recipe from random weights, when asked for: what pretraining is worth."""


DEMO_NAME = "demo-textures-lite0"


def is_demo_run(output_dir: str | Path) -> bool:
    """True when ``output_dir`` holds an earlier demo run (which a new demo replaces)."""
    from breedclf.config import load_config
    from breedclf.errors import ConfigurationError

    path = Path(output_dir) / "config.yaml"
    try:
        return path.is_file() and load_config(path).name == DEMO_NAME
    except ConfigurationError:
        return False


def demo_config(output_dir: str | Path = "runs/demo", *, epochs: int = 4) -> ExperimentConfig:
    """The demo experiment: Lite0 (ImageNet weights, offline) on the textures dataset at 96 px."""
    out = Path(output_dir)
    return validate_config(
        ExperimentConfig,
        {
            "name": DEMO_NAME,
            "output_dir": str(out),
            "data": {"dataset": "textures", "root": str(out / "data"), "image_size": 96},
            "model": {"name": "efficientnet_lite0", "weights": "DEFAULT"},
            "optimizer": {"name": "adamw", "lr": 2e-3, "backbone_lr": 5e-4},
            "scheduler": {"name": "cosine", "warmup_epochs": 0.5},
            "training": {"epochs": epochs, "batch_size": 16, "evaluate_test": True, "seed": 0},
        },
    )


def run_demo(
    output_dir: str | Path = "runs/demo",
    *,
    epochs: int = 4,
    show: int = 6,
    progress: bool | None = None,
    compare_random_init: bool = False,
) -> DemoResult:
    """Train, validate, test once, save, reload and predict ``show`` held-out test images.

    With ``compare_random_init``, the same recipe is also trained from random weights (into
    ``output_dir/random-init``) so the value of the ImageNet weights is measured, not claimed.

    An earlier demo run in ``output_dir`` is replaced; any other run there is refused
    (:class:`~breedclf.errors.RunExistsError`), like ``breedclf train`` does.
    """
    started = time.perf_counter()
    experiment = Experiment(demo_config(output_dir, epochs=epochs), progress=progress)
    result = run(experiment, overwrite=is_demo_run(output_dir))
    seconds = time.perf_counter() - started
    saved = load_model(result.model_dir)
    classes = experiment.splits.classes
    per_class = max(1, show // len(classes))
    picked = [
        sample
        for target in range(len(classes))
        for sample in [s for s in experiment.splits.test if s.target == target][:per_class]
    ]
    predictions = saved.predict([s.path for s in picked], top_k=3)
    samples = [
        (s.path, classes[s.target], preds) for s, preds in zip(picked, predictions, strict=True)
    ]
    baseline = None
    if compare_random_init:
        config = override(
            experiment.config,
            {"output_dir": str(Path(output_dir) / "random-init"), "model.weights": None},
        )
        baseline = run(
            Experiment(config, progress=progress),
            overwrite=is_demo_run(config.output_dir),
        )
    return DemoResult(run=result, seconds=seconds, samples=samples, random_init=baseline)
