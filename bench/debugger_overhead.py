"""Training throughput without the debugger, with its default rules, SageMaker's core set and
every rule.

Same run, same data (the offline texture photographs), same seed; prints images/s and the
overhead ratio of each debugger setting against the run without it (the baseline, measured in
the same run), and the debugger's own share of a step from the profiler's section timings. Usage::

    uv run python bench/debugger_overhead.py [--epochs 2] [--image-size 64] [--repeats 3]
        [--settings off,default,core,all]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _throughput import throughput

from breedclf.config import CORE_DEBUGGER_RULES
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


def direct_share(run_dir: Path) -> float:
    """The debugger's own share of a training step: median ``callback.Debugger`` section time
    over the median step duration, from the profiler's per-step records (forward hooks are
    timed inside ``forward``, so this is the whole cost only for rule sets without them)."""
    steps = [
        json.loads(line)
        for line in (run_dir / "profiler" / "framework.jsonl").read_text().splitlines()
    ]
    steps = [s for s in steps if s.get("kind") == "step"][1:]  # the first step warms up
    own = statistics.median(s["sections"].get("callback.Debugger", 0.0) for s in steps)
    return float(own / statistics.median(s["duration"] for s in steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--settings", default="off,default,core,all", help="Comma-separated; off is always run."
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_textures(Path(tmp) / "data")
        settings: dict[str, dict[str, Any] | None] = {
            "off": None,
            "default": {},  # DEFAULT_DEBUGGER_RULES, on when a config says nothing
            "core": {"rules": [{"name": name} for name in CORE_DEBUGGER_RULES]},
            "all": {"rules": ALL_RULES},
        }
        chosen = {"off", *args.settings.split(",")}
        settings = {name: value for name, value in settings.items() if name in chosen}
        # Interleaved so a slow spell of a shared machine does not favour one setting.
        speeds: dict[str, list[float]] = {name: [] for name in settings}
        shares: dict[str, list[float]] = {name: [] for name in settings}
        started = time.perf_counter()
        for rep in range(args.repeats):
            for name, debugger in settings.items():
                out = Path(tmp) / f"{name}-{rep}"
                speeds[name].append(
                    throughput(
                        root, out, epochs=args.epochs, size=args.image_size, debugger=debugger
                    )
                )
                shares[name].append(direct_share(out))
        base = max(speeds["off"])
        print(f"debugger overhead ({args.epochs} epochs, {args.image_size} px, best of "
              f"{args.repeats}, {time.perf_counter() - started:.0f} s in all):")  # fmt: skip
        print("  setting  img/s (best)  vs off   own share of a step (median)   every run's img/s")
        for name, values in speeds.items():
            best = max(values)
            share = statistics.median(shares[name])
            runs = " ".join(f"{v:.1f}" for v in values)
            print(f"  {name:7s} {best:8.1f}    {base / best - 1:+7.1%}   {share:8.1%}"
                  f"                       {runs}")  # fmt: skip


if __name__ == "__main__":
    main()
