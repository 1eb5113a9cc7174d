"""Training throughput without the debugger, with the core rule set, and with every rule.

Same run, same data (the offline texture photographs), same seed; prints images/s and the
overhead ratio of each debugger setting. Usage::

    uv run python bench/debugger_overhead.py [--epochs 2] [--image-size 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _throughput import throughput

from breedclf.data import write_textures

ALL_RULES: list[dict[str, Any]] = [
    {"name": "loss_not_decreasing"},
    {"name": "overfit"},
    {"name": "overtraining"},
    {"name": "vanishing_gradient"},
    {"name": "exploding_tensor"},
    {"name": "poor_weight_initialization"},
    {"name": "dead_relu"},
    {"name": "saturated_activation"},
    {"name": "weight_update_ratio"},
    {"name": "all_zero", "params": {"collection_names": "relu_output"}},
    {"name": "unchanged_tensor"},
    {"name": "tensor_variance", "params": {"collection_names": "weights", "max_threshold": 1e3}},
    {"name": "class_imbalance"},
    {"name": "check_input_images"},
    {"name": "confusion"},
    {"name": "stalled_training_rule"},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_textures(Path(tmp) / "data")
        settings = {"off": None, "core": {}, "all": {"rules": ALL_RULES}}
        # Interleaved twice so a slow spell of a shared machine does not favour one setting.
        speeds: dict[str, list[float]] = {name: [] for name in settings}
        started = time.perf_counter()
        for rep in range(2):
            for name, debugger in settings.items():
                out = Path(tmp) / f"{name}-{rep}"
                speeds[name].append(
                    throughput(
                        root, out, epochs=args.epochs, size=args.image_size, debugger=debugger
                    )
                )
        base = max(speeds["off"])
        print(f"debugger overhead ({args.epochs} epochs, {args.image_size} px, "
              f"{time.perf_counter() - started:.0f} s in all):")  # fmt: skip
        for name, values in speeds.items():
            best = max(values)
            print(f"  {name:5s} {best:7.1f} img/s  overhead {base / best - 1:+.1%}")


if __name__ == "__main__":
    main()
