"""Does TPE + median pruning find a good configuration with less compute than random search?

On Fashion-MNIST (Debian's ``dataset-fashion-mnist``, real product photos, 10 classes; a
class-balanced subset written as an ImageFolder tree), the same search space is searched by
(a) TPE with the median pruner and (b) random search without pruning: same number of trials,
same seed. Printed: the epochs each trained (compute), each one's best validation accuracy, and
the share of (b)'s compute that (a) needed to come within 1 point of (b)'s best. Then the
per-trial speed-up of cached frozen-backbone trials against the same trial trained through the
backbone.

    apt-get install dataset-fashion-mnist
    uv run python bench/tune_efficiency.py [--trials 24] [--out runs/bench-tune]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from breedclf.config import ExperimentConfig, override, validate_config
from breedclf.experiment import Experiment, run
from breedclf.tuning import CachedFeatureExperiment, Study, StudyConfig, read_trials

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = [
    "tshirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
]
PER_CLASS = {"train": 120, "valid": 40, "test": 40}


def _read_idx(name: str) -> np.ndarray[Any, Any]:
    with gzip.open(FASHION / name, "rb") as handle:
        data = handle.read()
    if name.endswith("labels-idx1-ubyte.gz"):
        return np.frombuffer(data, dtype=np.uint8, offset=8)
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(-1, 28, 28)


def write_fashion(root: Path) -> Path:
    """A class-balanced ImageFolder subset of the Fashion-MNIST training file."""
    if (root / "done").is_file():
        return root
    if not FASHION.is_dir():
        raise SystemExit("Fashion-MNIST not found: apt-get install dataset-fashion-mnist")
    images, labels = (
        _read_idx("train-images-idx3-ubyte.gz"),
        _read_idx("train-labels-idx1-ubyte.gz"),
    )
    order = np.random.default_rng(0).permutation(len(labels))
    taken = dict.fromkeys(range(10), 0)
    for index in order:
        label = int(labels[index])
        position = taken[label]
        taken[label] += 1
        for split, count in PER_CLASS.items():
            if position < count:
                folder = root / split / f"{label}_{CLASSES[label]}"
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(images[index]).save(folder / f"{index:05d}.png")
                break
            position -= count
    (root / "done").write_text("ok")
    return root


def experiment(root: Path) -> ExperimentConfig:
    return validate_config(
        ExperimentConfig,
        {
            "name": "fashion",
            "output_dir": "unused",
            "data": {
                "root": str(root),
                "image_size": 32,
                "num_workers": 0,
                "augment": {"scale": [1.0, 1.0], "hflip": False},
            },
            "model": {
                "name": "efficientnet_lite0",
                "weights": "DEFAULT",
                "freeze": {"policy": "backbone"},
            },
            "optimizer": {"name": "adamw"},
            "scheduler": {"name": "none"},
            "training": {"epochs": 8, "batch_size": 64, "seed": 0},
        },
    )


SPACE = {
    "optimizer.lr": {"type": "continuous", "low": 1e-5, "high": 1e-1, "scaling": "log"},
    "optimizer.name": {"type": "categorical", "values": ["adamw", "sgd"]},
    "optimizer.momentum": {"type": "continuous", "low": 0.5, "high": 0.99},
    "training.batch_size": {"type": "categorical", "values": [32, 64, 128]},
    "model.dropout": {"type": "continuous", "low": 0.0, "high": 0.5},
}


def search(
    name: str, out: Path, base: ExperimentConfig, trials: int, **fields: Any
) -> list[dict[str, str]]:
    study_dir = out / name
    if study_dir.exists():
        shutil.rmtree(study_dir)
    config = StudyConfig.model_validate(
        {
            "experiment": base.model_dump(mode="json"),
            "study_dir": str(study_dir),
            "trials": trials,
            "seed": 0,
            "parameters": SPACE,
            **fields,
        }
    )
    Study(config, progress=False).optimize()
    return read_trials(study_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-tune"))
    args = parser.parse_args()
    root = write_fashion(args.out / "fashion")
    base = experiment(root)

    started = time.perf_counter()
    tpe = search(
        "tpe-median",
        args.out,
        base,
        args.trials,
        sampler="tpe",
        pruner={"name": "median", "warmup_epochs": 1, "startup_trials": 5},
    )
    tpe_seconds = time.perf_counter() - started
    started = time.perf_counter()
    rnd = search(
        "random-none", args.out, base, args.trials, sampler="random", pruner={"name": "none"}
    )
    rnd_seconds = time.perf_counter() - started

    def epochs(rows: list[dict[str, str]]) -> int:
        return sum(int(r["epochs"] or 0) for r in rows)

    def best(rows: list[dict[str, str]]) -> float:
        return max(float(r["valid_acc"]) for r in rows if r["state"] == "COMPLETE")

    target = best(rnd) - 0.01
    spent, reached = 0, None
    for row in sorted(tpe, key=lambda r: int(r["number"])):
        spent += int(row["epochs"] or 0)
        if row["state"] == "COMPLETE" and float(row["valid_acc"]) >= target:
            reached = spent
            break
    print(f"trials per search: {args.trials}, seed 0, Fashion-MNIST subset {PER_CLASS}, 32 px")
    pruned = sum(r["state"] == "PRUNED" for r in tpe)
    print(
        f"(a) TPE + median pruner: {epochs(tpe)} epochs trained ({pruned} trials pruned), "
        f"best valid acc {best(tpe):.4f}, {tpe_seconds:.0f} s"
    )
    print(
        f"(b) random, no pruning:  {epochs(rnd)} epochs trained, "
        f"best valid acc {best(rnd):.4f}, {rnd_seconds:.0f} s"
    )
    accs = [float(r["valid_acc"]) for r in rnd if r["state"] == "COMPLETE"]
    print(f"    spread of (b)'s trials: {min(accs):.4f} .. {max(accs):.4f}")
    if reached is None:
        print(f"(a) never came within 1 point of (b)'s best ({best(rnd):.4f})")
    else:
        print(
            f"(a) came within 1 point of (b)'s best after {reached} epochs: "
            f"{reached / epochs(rnd):.2f} of (b)'s compute (goal <= 0.33)"
        )

    # Per-trial speed-up of cached frozen-backbone training (features already cached).
    config = override(base, {"output_dir": str(args.out / "speed-uncached")})
    shutil.rmtree(args.out / "speed-uncached", ignore_errors=True)
    shutil.rmtree(args.out / "speed-cached", ignore_errors=True)
    started = time.perf_counter()
    run(Experiment(config, progress=False))
    uncached = time.perf_counter() - started
    cached_config = override(config, {"output_dir": str(args.out / "speed-cached")})
    started = time.perf_counter()
    run(
        CachedFeatureExperiment(
            cached_config, cache_dir=args.out / "tpe-median" / "features", progress=False
        )
    )
    cached = time.perf_counter() - started
    print(
        f"one {base.training.epochs}-epoch frozen-backbone trial: uncached {uncached:.1f} s, "
        f"cached {cached:.1f} s: {uncached / cached:.0f}x faster"
    )


if __name__ == "__main__":
    main()
