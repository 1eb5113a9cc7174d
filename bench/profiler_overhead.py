"""Training throughput with the profiler (monitor, framework metrics, rules) on vs off.

Same run, same data (the offline texture photographs), same seed; the settings are interleaved
(three times by default) so a slow spell of a shared machine does not favour one of them, and
the best throughput of each is compared. Also prints what one system sample costs the
monitor's thread (CPU time, which a busy machine distorts less than wall time). Usage::

    uv run python bench/profiler_overhead.py [--epochs 2] [--image-size 64] [--repeats 3]

Run it on an idle machine for figures worth quoting (docs/profiler.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _throughput import throughput

from breedclf.data import write_textures

SETTINGS: dict[str, dict[str, Any] | None] = {
    "off": None,
    "on": {"report": False},  # the default section (the report is written after training)
    "on, 100 ms": {"report": False, "interval": 0.1},
}


def sample_cost(tmp: Path, samples: int = 50) -> float:
    """CPU seconds the monitor's thread spends on one sample."""
    import psutil

    from breedclf.profiler import SystemSampler

    sampler = SystemSampler(tmp / "cost.jsonl")
    disk, net = psutil.disk_io_counters(), psutil.net_io_counters()
    start = time.thread_time()
    for _ in range(samples):
        sampler._sample(psutil, disk, net, 0.5)
    return (time.thread_time() - start) / samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_textures(Path(tmp) / "data")
        speeds: dict[str, list[float]] = {name: [] for name in SETTINGS}
        started = time.perf_counter()
        for rep in range(args.repeats):
            for i, (name, profiler) in enumerate(SETTINGS.items()):
                out = Path(tmp) / f"run-{i}-{rep}"
                speeds[name].append(
                    throughput(
                        root, out, epochs=args.epochs, size=args.image_size, profiler=profiler
                    )
                )
        cost = sample_cost(Path(tmp))
    base = max(speeds["off"])
    print(f"profiler overhead ({args.epochs} epochs, {args.image_size} px, best of "
          f"{args.repeats}, {time.perf_counter() - started:.0f} s in all):")  # fmt: skip
    for name, values in speeds.items():
        best = max(values)
        print(f"  {name:11s} {best:7.1f} img/s  overhead {base / best - 1:+.1%}")
    print(f"one system sample: {cost * 1000:.2f} ms of CPU "
          f"({cost / 0.5:.2%} of one core at the default 500 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
