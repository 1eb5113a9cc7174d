"""SageMaker's built-in profiler rules, with AWS's names, parameters and defaults.

Semantics follow the rules' open source (``smdebug/profiler/analysis/rules``, December 2020);
see ``docs/profiler.md`` for each rule and the places where breedclf differs.
"""

from __future__ import annotations

import difflib
import math
import statistics
from collections import deque
from typing import Any, ClassVar

import numpy as np

from breedclf.debugger._rule import ISSUES_FOUND, NO_ISSUES_FOUND, Finding
from breedclf.errors import ConfigurationError
from breedclf.profiler._data import STEP_SECTIONS, SystemSample
from breedclf.profiler._rule import (
    PROFILER_RULES,
    ProfilerRule,
    Window,
    keyword_params,
    register_profiler_rule,
)

__all__ = [
    "BUILTIN_RULES",
    "SHORT_RUN",
    "BatchSize",
    "CPUBottleneck",
    "Dataloader",
    "GPUMemoryIncrease",
    "IOBottleneck",
    "LoadBalancing",
    "LowGPUUtilization",
    "MaxInitializationTime",
    "OverallFrameworkMetrics",
    "OverallSystemUsage",
    "ProfilerReport",
    "StepOutlier",
]


def _p(values: Any, q: float) -> float:
    return float(np.percentile(np.fromiter(values, dtype=float), q))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(message)


def _per_gpu(window: Window, dimension: str) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for s in window.system:
        if s.type == "gpu" and s.dimension == dimension:
            out.setdefault((s.node, s.name), []).append(s.value)
    return out


@register_profiler_rule
class LowGPUUtilization(ProfilerRule):
    """Under-used or fluctuating GPUs.

    After more than ``patience`` values of a GPU, looks at its last ``window`` values: fires if
    their p95 is below ``threshold_p95`` (under-used), or above it while their p5 is below
    ``threshold_p5`` (fluctuating: the GPU waits between bursts). Not applicable without GPUs.
    """

    description = "GPU utilisation is low (p95 below threshold_p95) or fluctuates (p5 low)."
    advice = (
        "Feed the GPU faster (more loader workers, pinned memory, prefetching) or raise the "
        "batch size; on fluctuation, look for a data-loading or synchronisation bottleneck; "
        "a smaller instance may do the same work"
    )

    def __init__(
        self,
        *,
        threshold_p95: float = 70,
        threshold_p5: float = 10,
        window: int = 500,
        patience: int = 1000,
    ) -> None:
        _require(window > 0 and patience >= 0, "window must be > 0 and patience >= 0")
        self.threshold_p95 = threshold_p95
        self.threshold_p5 = threshold_p5
        self.window = window
        self.patience = patience
        self.applicable = False
        self._values: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}
        self._last: dict[str, tuple[float, float]] = {}

    def update(self, window: Window) -> list[Finding]:
        found = []
        for (node, gpu), values in _per_gpu(window, "GPUUtilization").items():
            key = f"{node}/{gpu}"
            self.applicable = True
            buf = self._values.setdefault(key, deque(maxlen=self.window))
            buf.extend(values)
            self._counts[key] = self._counts.get(key, 0) + len(values)
            self.datapoints += len(values)
            if self._counts[key] <= self.patience:
                continue
            p95, p5 = _p(buf, 95), _p(buf, 5)
            self._last[key] = (p95, p5)
            if p95 < self.threshold_p95:
                found.append(
                    self.finding(
                        window,
                        f"{key}/GPUUtilization",
                        p95,
                        f"{key} is under-used: p95 utilisation {p95:.0f}% < {self.threshold_p95}%",
                    )
                )
            elif p5 < self.threshold_p5:
                found.append(
                    self.finding(
                        window,
                        f"{key}/GPUUtilization",
                        p5,
                        f"{key} utilisation fluctuates: p95 {p95:.0f}% but p5 {p5:.0f}% < "
                        f"{self.threshold_p5}%",
                    )
                )
        return found

    def details(self) -> dict[str, Any]:
        return {k: {"p95": v[0], "p5": v[1]} for k, v in self._last.items()}

    def waiting(self) -> str:
        return self._waiting_for(min(self._counts.values(), default=0), self.patience, "values")


class _Bottleneck(ProfilerRule):
    """Shared by CPUBottleneck and IOBottleneck: the share of samples in which some GPU idles
    while ``dimension`` (a core's utilisation, the I/O wait) is above its threshold."""

    dimension: ClassVar[str] = ""
    busy: ClassVar[str] = ""  # the message's words for the busy condition

    def _start(self, threshold: float, gpu_threshold: float, busy_threshold: float,
               patience: int) -> None:  # fmt: skip
        self.threshold, self.gpu_threshold, self.patience = threshold, gpu_threshold, patience
        self._busy_threshold = busy_threshold
        self.applicable = False
        self._snapshots = 0
        self._bottlenecks = 0

    def update(self, window: Window) -> list[Finding]:
        for snapshot in window.snapshots():
            gpus = [s.value for s in snapshot if s.dimension == "GPUUtilization"]
            if not gpus:
                continue
            self.applicable = True
            self._snapshots += 1
            self.datapoints += 1
            busy = any(s.dimension == self.dimension and s.value > self._busy_threshold
                       for s in snapshot)  # fmt: skip
            if min(gpus) < self.gpu_threshold and busy:
                self._bottlenecks += 1
        if self._snapshots <= self.patience:
            return []
        share = 100.0 * self._bottlenecks / self._snapshots
        if share <= self.threshold:
            return []
        message = (
            f"{share:.0f}% of {self._snapshots} samples had a GPU under {self.gpu_threshold}% "
            f"while {self.busy} {self._busy_threshold}% (threshold {self.threshold}%)"
        )
        return [self.finding(window, self.dimension, share, message)]

    def details(self) -> dict[str, Any]:
        return {"snapshots": self._snapshots, "bottlenecks": self._bottlenecks}

    def waiting(self) -> str:
        return self._waiting_for(self._snapshots, self.patience, "samples")


@register_profiler_rule
class CPUBottleneck(_Bottleneck):
    """The GPU idles while a CPU core is saturated: the input pipeline cannot keep up.

    After more than ``patience`` samples, fires when more than ``threshold`` % of the samples
    had some GPU below ``gpu_threshold`` % and some core above ``cpu_threshold`` %.
    Not applicable without GPUs (on a CPU-only run, see Dataloader and StepOutlier).
    """

    description = "The GPU idles while a CPU core is saturated."
    advice = (
        "Move preprocessing off the critical path: more DataLoader workers, decode at lower "
        "resolution, cache decoded images, or do augmentation on the GPU"
    )
    dimension = "CPUUtilization"
    busy = "a CPU core was above"

    def __init__(self, *, threshold: float = 50, gpu_threshold: float = 10,
                 cpu_threshold: float = 90, patience: int = 1000) -> None:  # fmt: skip
        self.cpu_threshold = cpu_threshold
        self._start(threshold, gpu_threshold, cpu_threshold, patience)


@register_profiler_rule
class IOBottleneck(_Bottleneck):
    """The GPU idles while the CPUs wait for I/O: storage cannot keep up.

    After more than ``patience`` samples, fires when more than ``threshold`` % of the samples
    had some GPU below ``gpu_threshold`` % and I/O wait above ``io_threshold`` %.
    Not applicable without GPUs.
    """

    description = "The GPU idles while the CPUs wait for I/O."
    advice = (
        "Read from faster storage (local NVMe instead of a network file system), pre-shard or "
        "cache the dataset, or use more loader workers to overlap reads"
    )
    dimension = "I/OWaitPercentage"
    busy = "I/O wait was above"

    def __init__(self, *, threshold: float = 50, gpu_threshold: float = 10,
                 io_threshold: float = 50, patience: int = 1000) -> None:  # fmt: skip
        self.io_threshold = io_threshold
        self._start(threshold, gpu_threshold, io_threshold, patience)


@register_profiler_rule
class GPUMemoryIncrease(ProfilerRule):
    """GPU memory keeps growing (a leak, or tensors kept alive across steps).

    After more than ``patience`` values, fires when the mean of the last ``window`` values
    exceeds the mean of the window one sample earlier by more than ``increase`` points.
    """

    description = "GPU memory use grows by more than `increase` percentage points."
    advice = (
        "Look for tensors kept across steps (a loss summed without .item()/detach, lists of "
        "outputs); if the model needs the memory, lower the batch size before it runs out"
    )

    def __init__(self, *, increase: float = 5, patience: int = 1000, window: int = 10) -> None:
        _require(window > 0, "window must be > 0")
        self.increase, self.patience, self.window = increase, patience, window
        self.applicable = False
        self._values: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}
        self._max_increase = 0.0

    def update(self, window: Window) -> list[Finding]:
        found = []
        for (node, gpu), values in _per_gpu(window, "GPUMemoryUtilization").items():
            key = f"{node}/{gpu}"
            self.applicable = True
            buf = self._values.setdefault(key, deque(maxlen=self.window + 1))
            fired = False
            for value in values:
                buf.append(value)
                self._counts[key] = self._counts.get(key, 0) + 1
                self.datapoints += 1
                if self._counts[key] <= self.patience or len(buf) <= self.window:
                    continue
                items = list(buf)
                diff = statistics.fmean(items[1:]) - statistics.fmean(items[:-1])
                self._max_increase = max(self._max_increase, diff)
                if diff > self.increase and not fired:
                    fired = True
                    found.append(
                        self.finding(
                            window,
                            f"{key}/GPUMemoryUtilization",
                            diff,
                            f"{key} memory rose by {diff:.1f} points (now {value:.0f}%)",
                        )
                    )
        return found

    def details(self) -> dict[str, Any]:
        return {"max_increase": self._max_increase}

    def waiting(self) -> str:
        return self._waiting_for(min(self._counts.values(), default=0), self.patience, "values")


@register_profiler_rule
class BatchSize(ProfilerRule):
    """The batch is too small to use the machine: CPU, GPU and GPU memory all under-used.

    After more than ``window`` and ``patience`` values, fires when the p95 of mean CPU use is
    below ``cpu_threshold_p95`` and, for a GPU, the p95 of its utilisation and of its memory
    are below ``gpu_threshold_p95`` and ``gpu_memory_threshold_p95``. Not applicable without
    GPUs.
    """

    description = "CPU, GPU and GPU memory are all under-used: the batch could be larger."
    advice = "Raise the batch size (scale the learning rate with it), or choose a smaller instance"

    def __init__(
        self,
        *,
        cpu_threshold_p95: float = 70,
        gpu_threshold_p95: float = 70,
        gpu_memory_threshold_p95: float = 70,
        patience: int = 1000,
        window: int = 500,
    ) -> None:
        self.cpu_threshold_p95 = cpu_threshold_p95
        self.gpu_threshold_p95 = gpu_threshold_p95
        self.gpu_memory_threshold_p95 = gpu_memory_threshold_p95
        self.patience, self.window = patience, window
        self.applicable = False
        self._cpu: dict[str, deque[float]] = {}
        self._gpu: dict[tuple[str, str, str], deque[float]] = {}
        self._count = 0

    def update(self, window: Window) -> list[Finding]:
        for snapshot in window.snapshots():
            gpus = [s for s in snapshot if s.type == "gpu"]
            if not gpus:
                continue
            self.applicable = True
            node = snapshot[0].node
            cores = [s.value for s in snapshot if s.dimension == "CPUUtilization"]
            if cores:
                self._cpu.setdefault(node, deque(maxlen=self.window)).append(
                    statistics.fmean(cores)
                )
            for s in gpus:
                key = (node, s.name, s.dimension)
                self._gpu.setdefault(key, deque(maxlen=self.window)).append(s.value)
            self._count += 1
            self.datapoints += 1
        if self._count <= max(self.patience, self.window):
            return []
        found = []
        for node, cpu in self._cpu.items():
            cpu95 = _p(cpu, 95)
            if cpu95 >= self.cpu_threshold_p95:
                continue
            for (gnode, gpu, dim), values in self._gpu.items():
                if gnode != node or dim != "GPUUtilization":
                    continue
                util95 = _p(values, 95)
                mem95 = _p(self._gpu.get((node, gpu, "GPUMemoryUtilization"), [0.0]), 95)
                if util95 < self.gpu_threshold_p95 and mem95 < self.gpu_memory_threshold_p95:
                    found.append(
                        self.finding(
                            window,
                            f"{node}/{gpu}",
                            util95,
                            f"{node}/{gpu}: p95 CPU {cpu95:.0f}%, GPU {util95:.0f}%, GPU memory "
                            f"{mem95:.0f}%: all under their thresholds",
                        )
                    )
        return found

    def waiting(self) -> str:
        return self._waiting_for(self._count, max(self.patience, self.window), "samples")


@register_profiler_rule
class StepOutlier(ProfilerRule):
    """Steps much slower than usual (a stall in data loading, checkpointing, a straggler).

    Once more than ``min_steps`` steps were recorded, fires when more than ``n_outliers`` steps
    took longer than mean + ``stddev`` standard deviations of all step durations so far.
    ``mode`` is kept for SageMaker compatibility: breedclf times training steps only
    (``None`` or ``"train"``). ``min_steps`` is breedclf's name for the 100 steps AWS's code
    waits for.
    """

    description = "More than n_outliers steps took longer than mean + stddev·std."
    advice = (
        "Find what the slow steps share: the data wait (a slow or uneven loader, first-batch "
        "worker start), a periodic callback (checkpoints, logging), or the system timeline"
    )

    def __init__(
        self,
        *,
        stddev: float = 3,
        mode: str | None = None,
        n_outliers: int = 10,
        min_steps: int = 100,
    ) -> None:
        _require(
            mode in (None, "train", "TRAIN"),
            f"StepOutlier: breedclf times training steps only, mode={mode!r}",
        )
        self.stddev, self.mode, self.n_outliers, self.min_steps = (
            stddev,
            mode,
            n_outliers,
            min_steps,
        )
        self._durations: list[float] = []
        self._steps: list[int] = []
        self._outliers: list[tuple[int, float]] = []
        self._limit = math.inf

    def update(self, window: Window) -> list[Finding]:
        for step in window.steps:
            self._durations.append(step.duration)
            self._steps.append(step.step)
        self.datapoints = len(self._durations)
        if len(self._durations) <= self.min_steps:
            return []
        mean = statistics.fmean(self._durations)
        std = statistics.pstdev(self._durations)
        self._limit = mean + self.stddev * std
        self._outliers = [
            (s, d) for s, d in zip(self._steps, self._durations, strict=True) if d > self._limit
        ]
        if len(self._outliers) <= self.n_outliers:
            return []
        return [
            self.finding(
                window,
                "step_duration",
                len(self._outliers),
                f"{len(self._outliers)} of {len(self._durations)} steps took longer than "
                f"{self._limit * 1000:.0f} ms (mean {mean * 1000:.0f} ms + {self.stddev}·std)",
            )
        ]

    def details(self) -> dict[str, Any]:
        return {
            "limit_seconds": self._limit if math.isfinite(self._limit) else None,
            "outliers": [{"step": s, "seconds": d} for s, d in self._outliers[:50]],
        }

    def waiting(self) -> str:
        return self._waiting_for(len(self._durations), self.min_steps, "steps")


@register_profiler_rule
class Dataloader(ProfilerRule):
    """Training waits for data: the share of step time spent in the data wait, and the workers.

    After more than ``patience`` steps (the first step of each fit, which starts the workers,
    is not counted), fires when the data wait takes more than ``data_wait_threshold`` % of the
    step time; the message then compares the loader's workers with the cores (fewer than
    ``min_threshold`` % of the cores: add workers). It also fires when the loader has more
    workers than ``max_threshold`` % of the cores (they compete for the CPUs). AWS's rule
    counted running worker processes (an AWS-patched PyTorch); breedclf measures the wait
    itself and reads the configured worker count. ``data_wait_threshold`` is breedclf's.
    """

    description = "Training waits for data (data-wait share above data_wait_threshold)."
    advice = (
        "Raise data.num_workers (up to the cores), keep images small on disk, cache decoded "
        "images; with enough workers, check the storage (IOBottleneck) and the transform cost"
    )

    def __init__(
        self,
        *,
        min_threshold: float = 70,
        max_threshold: float = 200,
        patience: int = 10,
        data_wait_threshold: float = 25,
    ) -> None:
        self.min_threshold, self.max_threshold = min_threshold, max_threshold
        self.patience, self.data_wait_threshold = patience, data_wait_threshold
        self._wait = 0.0
        self._total = 0.0
        self._steps = 0
        self._first_steps: set[int] = set()
        self._share = 0.0

    def update(self, window: Window) -> list[Finding]:
        start_step = int(window.details.get("global_step", 0)) + 1
        for step in window.steps:
            if step.step == start_step and step.step not in self._first_steps:
                self._first_steps.add(step.step)
                continue  # worker start-up, not steady-state loading
            self._wait += step.data_wait
            self._total += step.duration
            self._steps += 1
        self.datapoints = self._steps
        found: list[Finding] = []
        workers = window.details.get("num_workers")
        cores = window.details.get("cpu_count") or 1
        if workers is not None and workers > cores * self.max_threshold / 100:
            found.append(
                self.finding(
                    window,
                    "num_workers",
                    workers,
                    f"the loader has {workers} workers for {cores} cores (more than "
                    f"{self.max_threshold}% of the cores): they compete for the CPUs",
                )
            )
        if self._steps <= self.patience or self._total <= 0:
            return found
        self._share = 100.0 * self._wait / self._total
        if self._share > self.data_wait_threshold:
            hint = ""
            if workers is not None and workers < cores * self.min_threshold / 100:
                hint = f"; the loader has {workers} workers for {cores} cores: add workers"
            found.append(
                self.finding(
                    window,
                    "data_wait",
                    self._share,
                    f"{self._share:.0f}% of the step time is spent waiting for data "
                    f"(threshold {self.data_wait_threshold}%){hint}",
                )
            )
        return found

    def details(self) -> dict[str, Any]:
        return {"data_wait_percent": self._share, "steps": self._steps}

    def waiting(self) -> str:
        return self._waiting_for(self._steps, self.patience, "steps")


@register_profiler_rule
class MaxInitializationTime(ProfilerRule):
    """Training takes too long to start (downloads, dataset listing, model building).

    Fires when more than ``threshold`` minutes passed between the start of the process and the
    first training step, or pass without any step.
    """

    description = "More than `threshold` minutes pass before the first training step."
    advice = (
        "Cache the dataset listing (a split manifest), the pretrained weights and the data on "
        "local storage; check that no download or full-dataset scan runs at start"
    )

    def __init__(self, *, threshold: float = 20) -> None:
        self.threshold = threshold
        self._first: float | None = None
        self._fired = False
        self.initialization: float | None = None

    def update(self, window: Window) -> list[Finding]:
        start = window.process_start if window.process_start is not None else window.origin
        self.datapoints += len(window.steps)
        if self._first is None and window.steps:
            self._first = window.steps[0].start
            self.initialization = self._first - start
        if self._fired:
            return []
        limit = self.threshold * 60
        waited = self.initialization
        if waited is None:
            end = (
                window.end
                if math.isfinite(window.end)
                else max(
                    [s.timestamp for s in window.system] + [window.start], default=window.start
                )
            )
            waited = end - start
            if waited <= limit:
                return []
            message = f"no training step after {waited / 60:.1f} minutes"
        elif waited > limit:
            message = f"the first training step started after {waited / 60:.1f} minutes"
        else:
            return []
        self._fired = True
        return [
            self.finding(
                window, "initialization", waited, f"{message} (threshold {self.threshold} min)"
            )
        ]

    def details(self) -> dict[str, Any]:
        return {"initialization_seconds": self.initialization}


def _js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance (natural log, as scipy's default) of two histograms."""
    p = p / max(p.sum(), 1e-12)
    q = q / max(q.sum(), 1e-12)
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / b[mask])))

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


@register_profiler_rule
class LoadBalancing(ProfilerRule):
    """GPUs of a node carry unequal work (data-parallel imbalance).

    After more than ``patience`` values per GPU, fires when the Jensen–Shannon distance between
    two GPUs' utilisation histograms (2 % bins) exceeds ``threshold``. Not applicable with fewer
    than two GPUs on a node.
    """

    description = "Two GPUs' utilisation distributions differ (Jensen–Shannon > threshold)."
    advice = (
        "Check that every GPU gets the same batch size and work (DistributedSampler, "
        "drop_last), and that no rank does extra work (logging, evaluation) during training"
    )

    def __init__(self, *, threshold: float = 0.5, patience: int = 1000) -> None:
        self.threshold, self.patience = threshold, patience
        self.applicable = False
        self._hist: dict[tuple[str, str], np.ndarray] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._worst = 0.0

    def update(self, window: Window) -> list[Finding]:
        for key, values in _per_gpu(window, "GPUUtilization").items():
            hist, _ = np.histogram(values, bins=50, range=(0, 100))
            self._hist[key] = self._hist.get(key, np.zeros(50)) + hist
            self._counts[key] = self._counts.get(key, 0) + len(values)
            self.datapoints += len(values)
        nodes = {node for node, _ in self._hist}
        found = []
        for node in sorted(nodes):
            gpus = sorted(g for n, g in self._hist if n == node)
            if len(gpus) < 2:
                continue
            self.applicable = True
            if min(self._counts[(node, g)] for g in gpus) <= self.patience:
                continue
            for i, a in enumerate(gpus):
                for b in gpus[i + 1 :]:
                    d = _js_distance(self._hist[(node, a)], self._hist[(node, b)])
                    self._worst = max(self._worst, d)
                    if d > self.threshold:
                        found.append(
                            self.finding(
                                window,
                                f"{node}/{a}-{b}",
                                d,
                                f"{node}: {a} and {b} are unevenly loaded (Jensen–Shannon "
                                f"distance {d:.2f} > {self.threshold})",
                            )
                        )
        return found

    def details(self) -> dict[str, Any]:
        return {"max_distance": self._worst}

    def waiting(self) -> str:
        return self._waiting_for(min(self._counts.values(), default=0), self.patience, "values")


def sample_means(samples: list[SystemSample]) -> dict[tuple[str, str], list[float]]:
    """``{(node, metric): [value per sample]}``; per-core and per-GPU values are averaged."""
    groups: dict[tuple[str, str], dict[float, list[float]]] = {}
    for s in samples:
        groups.setdefault((s.node, s.dimension), {}).setdefault(s.timestamp, []).append(s.value)
    return {key: [statistics.fmean(v) for v in by_time.values()] for key, by_time in groups.items()}


def usage_table(means: dict[tuple[str, str], list[float]]) -> list[dict[str, Any]]:
    """Max, p99, p95, p50 and min of every (node, metric) of :func:`sample_means`."""
    rows = []
    for (node, dim), series in sorted(means.items()):
        values = np.array(series)
        unit = "bytes/s" if dim.endswith("PerSecond") else "%"
        rows.append(
            {
                "node": node,
                "metric": dim,
                "unit": unit,
                "max": float(values.max()),
                "p99": float(np.percentile(values, 99)),
                "p95": float(np.percentile(values, 95)),
                "p50": float(np.percentile(values, 50)),
                "min": float(values.min()),
            }
        )
    return rows


@register_profiler_rule
class OverallSystemUsage(ProfilerRule):
    """Never fires: the max/p99/p95/p50/min of every system metric per node, for the report."""

    description = "Summary of system usage per node (never fires)."
    advice = "Read the system usage table: it shows where the machine has headroom"

    def __init__(self) -> None:
        # Per-sample means only (a long run on many cores has millions of raw values).
        self._means: dict[tuple[str, str], list[float]] = {}

    def update(self, window: Window) -> list[Finding]:
        for key, values in sample_means(window.system).items():
            self._means.setdefault(key, []).extend(values)
        self.datapoints += len(window.system)
        return []

    def details(self) -> dict[str, Any]:
        return {"usage": usage_table(self._means)}


def time_breakdown(steps: list[Any], sections: list[Any]) -> dict[str, float]:
    """Seconds by section: the step's sections and callbacks, validation, checkpoints, and
    each callback's epoch-level hooks."""
    totals: dict[str, float] = dict.fromkeys(STEP_SECTIONS, 0.0)
    for step in steps:
        for name, seconds in step.sections.items():
            totals[name] = totals.get(name, 0.0) + seconds
        other = step.duration - sum(step.sections.values())
        totals["other (step)"] = totals.get("other (step)", 0.0) + max(0.0, other)
    hooks: dict[str, float] = {}
    for s in sections:
        if s.name in ("validation", "checkpoint"):
            totals[s.name] = totals.get(s.name, 0.0) + s.duration
        elif s.name.startswith("callback.") and ".on_validation_" not in s.name:
            # Validation hooks run inside "validation": not counted twice.
            key = s.name.rsplit(".", 1)[0] + " (epoch)"
            hooks[key] = hooks.get(key, 0.0) + s.duration
    # The checkpoint section runs inside the Checkpointer's epoch-end hook.
    if "callback.Checkpointer (epoch)" in hooks:
        hooks["callback.Checkpointer (epoch)"] -= totals.get("checkpoint", 0.0)
    totals.update({k: max(0.0, v) for k, v in hooks.items()})
    return {k: v for k, v in totals.items() if v > 0}


@register_profiler_rule
class OverallFrameworkMetrics(ProfilerRule):
    """Never fires: where training time goes (data wait, forward, backward, optimizer, ...)."""

    description = "Breakdown of training time by section (never fires)."
    advice = "Read the time breakdown: the largest section is where to optimise first"

    def __init__(self) -> None:
        self._steps: list[Any] = []

    def update(self, window: Window) -> list[Finding]:
        self._steps += window.steps
        self.datapoints = len(self._steps)
        return []

    def details(self) -> dict[str, Any]:
        total = sum(s.duration for s in self._steps)
        wait = sum(s.data_wait for s in self._steps)
        return {
            "steps": len(self._steps),
            "step_seconds": total,
            "data_wait_percent": 100 * wait / total if total else None,
        }


#: The rules ProfilerReport runs, in AWS's report order.
BUILTIN_RULES = (
    "LowGPUUtilization",
    "CPUBottleneck",
    "IOBottleneck",
    "GPUMemoryIncrease",
    "BatchSize",
    "StepOutlier",
    "Dataloader",
    "MaxInitializationTime",
    "LoadBalancing",
    "OverallSystemUsage",
    "OverallFrameworkMetrics",
)

#: The ``short_run`` preset: windows and patience for runs of minutes, not hours (AWS's
#: defaults wait for 1000 samples, about 8 minutes at 500 ms, before most rules look at all).
SHORT_RUN: dict[str, Any] = {
    "LowGPUUtilization_window": 20,
    "LowGPUUtilization_patience": 20,
    "CPUBottleneck_patience": 20,
    "IOBottleneck_patience": 20,
    "GPUMemoryIncrease_patience": 20,
    "GPUMemoryIncrease_window": 5,
    "BatchSize_patience": 20,
    "BatchSize_window": 20,
    "StepOutlier_min_steps": 20,
    "StepOutlier_n_outliers": 3,
    "Dataloader_patience": 5,
    "LoadBalancing_patience": 20,
}


@register_profiler_rule
class ProfilerReport(ProfilerRule):
    """Runs every built-in profiler rule, with ``<Rule>_<param>`` overrides (as SageMaker's).

    Its status is ``IssuesFound`` when any sub-rule fired. ``opt_out_telemetry`` is accepted
    and ignored (breedclf sends nothing anywhere).

    Example:
        >>> report = ProfilerReport(CPUBottleneck_threshold=60, StepOutlier_stddev=5)
        >>> [r.rule_name for r in report.rules][:3]
        ['LowGPUUtilization', 'CPUBottleneck', 'IOBottleneck']
        >>> report.rules[1].threshold
        60
    """

    description = "Runs all the profiler rules above."
    advice = "See the rules that found issues"

    def __init__(self, **overrides: Any) -> None:
        overrides.pop("opt_out_telemetry", None)
        self.overrides = dict(overrides)
        by_rule: dict[str, dict[str, Any]] = {name: {} for name in BUILTIN_RULES}
        for key, value in overrides.items():
            rule, _, param = key.partition("_")
            if rule not in by_rule or not param:
                close = difflib.get_close_matches(
                    key,
                    [
                        f"{r}_{p}"
                        for r in BUILTIN_RULES
                        for p in keyword_params(PROFILER_RULES.get(r))
                    ],
                    n=1,
                    cutoff=0.6,
                )
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigurationError(
                    f"ProfilerReport: {key!r} is not <Rule>_<parameter> of a built-in rule.{hint}"
                    f" Rules: {', '.join(BUILTIN_RULES)}"
                )
            by_rule[rule][param] = value
        from breedclf.profiler._rule import create_profiler_rule

        self.rules = [create_profiler_rule(name, by_rule[name]) for name in BUILTIN_RULES]

    def params(self) -> dict[str, Any]:
        return dict(self.overrides)

    def expand(self) -> list[ProfilerRule]:
        """The sub-rules, then this rule (which summarises them)."""
        return [*self.rules, self]

    def update(self, window: Window) -> list[Finding]:
        self.datapoints = max((r.datapoints for r in self.rules), default=0)
        return []

    @property
    def status(self) -> str:
        fired = any(r.status == ISSUES_FOUND for r in self.rules)
        return ISSUES_FOUND if fired else NO_ISSUES_FOUND

    def details(self) -> dict[str, Any]:
        return {"fired": [r.label for r in self.rules if r.triggered]}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.overrides.items())
        return f"ProfilerReport({args})"
