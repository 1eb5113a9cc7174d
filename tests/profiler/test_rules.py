"""Profiler rules on real recorded runs (a slow data loader vs a healthy one), and the GPU rules
on metric files in SageMaker's shape (and for real when a GPU is present)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from breedclf.errors import ConfigurationError, UnknownNameError
from breedclf.profiler import (
    CPUBottleneck,
    Dataloader,
    ProfilerReport,
    ProfilerRules,
    StepOutlier,
    SystemSample,
    create_profiler_rule,
    evaluate_profiler,
    load_profiler_data,
    parse_profiler_rule,
)
from tests.profiler.helpers import SleepyImages, UnevenCompute, profiled_fit


def loader_rules() -> list[StepOutlier | Dataloader]:
    return [StepOutlier(stddev=3, n_outliers=5, min_steps=20), Dataloader(patience=5)]


def test_a_slow_data_loader_is_reported(tmp_path: Path) -> None:
    # 400 images in batches of 4: every 16th batch waits 0.25 s for its first image (rare
    # enough to be outliers: mean + 3 std of the step durations stays below 0.25 s).
    slow_data = SleepyImages(400, every=64, sleep=0.25)
    trainer = profiled_fit(tmp_path, loader_rules(), dataset=slow_data)
    statuses = json.loads((tmp_path / "profiler" / "statuses.json").read_text())
    assert statuses == {"StepOutlier": "IssuesFound", "Dataloader": "IssuesFound"}
    data = load_profiler_data(tmp_path)
    slow = [s.step for s in data.framework.steps if s.data_wait >= 0.25]
    assert slow == list(range(1, 101, 16))
    wait = sum(s.data_wait for s in data.framework.steps)
    assert wait / sum(s.duration for s in data.framework.steps) > 0.5
    findings = [json.loads(line) for line in (tmp_path / "profiler" / "findings.jsonl")
                .read_text().splitlines()]  # fmt: skip
    assert {f["rule"] for f in findings} == {"StepOutlier", "Dataloader"}
    dataloader = next(f for f in findings if f["rule"] == "Dataloader")
    assert "waiting for data" in dataloader["message"]
    assert "0 workers for" in dataloader["message"] and "add workers" in dataloader["message"]
    # The live rules and the offline re-evaluation of the recorded files agree.
    callback = next(cb for cb in trainer.callbacks if isinstance(cb, ProfilerRules))
    offline = evaluate_profiler(tmp_path, loader_rules(), scan_interval=1.0)
    assert offline.statuses == callback.statuses
    outliers = {o["step"] for o in offline.rules[0].details()["outliers"]}
    assert set(slow) - {1} <= outliers


def test_a_healthy_loader_is_not_reported(tmp_path: Path) -> None:
    # Steps of a few ms alternate with steps 60 ms longer: mean + 3 std sits ~60 ms above the
    # slow steps, so only real stalls count as outliers, not a busy machine's few-ms hiccups.
    profiled_fit(tmp_path, loader_rules(), dataset=SleepyImages(400), extra=[UnevenCompute()])
    statuses = json.loads((tmp_path / "profiler" / "statuses.json").read_text())
    assert statuses == {"StepOutlier": "NoIssuesFound", "Dataloader": "NoIssuesFound"}
    assert not (tmp_path / "profiler" / "findings.jsonl").exists()


# ------------------------------------------------- GPU rules on metric files (SageMaker's shape)

Metrics = Callable[[int], dict[str, float]]


def record(folder: Path, metrics: Metrics, samples: int, *, cores: int = 4,
           interval: float = 0.5) -> Path:  # fmt: skip
    """Write ``samples`` system samples as the monitor does: per-core CPU, I/O wait, memory and,
    per GPU, utilisation and memory. ``metrics(i)`` gives sample i's values by key
    (``cpu``, ``io``, ``gpu0``, ``gpu0_mem``, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    t0 = 1_700_000_000.0
    lines = [{"kind": "start", "time": t0, "process_start": t0 - 5, "global_step": 0,
              "cpu_count": cores, "num_workers": 4}]  # fmt: skip
    system = []
    for i in range(samples):
        stamp = t0 + (i + 1) * interval
        values = metrics(i)
        row = [SystemSample("cpu", f"cpu{c}", "CPUUtilization",
                            values.get("cpu", 20.0) if c == 0 else 10.0, "algo-1", stamp)
               for c in range(cores)]  # fmt: skip
        row.append(SystemSample("cpu", "cpu", "I/OWaitPercentage", values.get("io", 0.0),
                                "algo-1", stamp))  # fmt: skip
        row.append(SystemSample("memory", "memory", "MemoryUsedPercent", 30.0, "algo-1", stamp))
        for key, value in values.items():
            if key.startswith("gpu"):
                name, _, mem = key.partition("_")
                dim = "GPUMemoryUtilization" if mem else "GPUUtilization"
                row.append(SystemSample("gpu", name, dim, value, "algo-1", stamp))
        system += row
        lines.append({"kind": "step", "step": i + 1, "epoch": 1, "start": stamp - 0.4,
                      "duration": 0.5, "sections": {"data": 0.01, "forward": 0.2}})  # fmt: skip
    (folder / "system.jsonl").write_text("".join(json.dumps(s.to_json()) + "\n" for s in system))
    (folder / "framework.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


SHORT = {"patience": 20, "window": 20}


def ramp(i: int) -> float:
    """GPU memory: flat at 10 %, then 6 points more per sample from sample 30 to 44."""
    return 10.0 + 6 * max(0, min(i - 30, 14))


@pytest.mark.parametrize(
    ("rule", "metrics", "fires", "words"),
    [
        pytest.param("LowGPUUtilization", lambda i: {"gpu0": 30.0, "gpu0_mem": 40.0}, True,
                     "under-used", id="low-gpu-underused"),
        pytest.param("LowGPUUtilization", lambda i: {"gpu0": 95.0 if i % 4 else 2.0,
                     "gpu0_mem": 40.0}, True, "fluctuates", id="low-gpu-fluctuates"),
        pytest.param("LowGPUUtilization", lambda i: {"gpu0": 92.0, "gpu0_mem": 40.0}, False,
                     "", id="low-gpu-busy"),
        pytest.param("CPUBottleneck", lambda i: {"cpu": 97.0, "gpu0": 3.0, "gpu0_mem": 40.0},
                     True, "CPU core", id="cpu-bottleneck"),
        pytest.param("CPUBottleneck", lambda i: {"cpu": 97.0, "gpu0": 80.0, "gpu0_mem": 40.0},
                     False, "", id="cpu-busy-gpu-busy"),
        pytest.param("IOBottleneck", lambda i: {"io": 70.0, "gpu0": 3.0, "gpu0_mem": 40.0},
                     True, "I/O wait", id="io-bottleneck"),
        pytest.param("GPUMemoryIncrease", lambda i: {"gpu0": 90.0, "gpu0_mem": ramp(i)},
                     True, "memory rose", id="memory-increase"),
        pytest.param("GPUMemoryIncrease", lambda i: {"gpu0": 90.0, "gpu0_mem": 50.0}, False,
                     "", id="memory-flat"),
        pytest.param("BatchSize", lambda i: {"cpu": 20.0, "gpu0": 30.0, "gpu0_mem": 20.0},
                     True, "under their thresholds", id="batch-size-small"),
        pytest.param("BatchSize", lambda i: {"cpu": 20.0, "gpu0": 30.0, "gpu0_mem": 85.0},
                     False, "", id="batch-size-memory-full"),
        pytest.param("LoadBalancing", lambda i: {"gpu0": 90.0, "gpu1": 10.0, "gpu0_mem": 40.0,
                     "gpu1_mem": 40.0}, True, "unevenly", id="load-imbalance"),
        pytest.param("LoadBalancing", lambda i: {"gpu0": 90.0 + i % 3, "gpu1": 90.0 + i % 2,
                     "gpu0_mem": 40.0, "gpu1_mem": 40.0}, False, "", id="load-balanced"),
    ],
)  # fmt: skip
def test_gpu_rules_on_recorded_metrics(
    tmp_path: Path, rule: str, metrics: Metrics, fires: bool, words: str
) -> None:
    folder = record(tmp_path, metrics, 120)
    params = {k: v for k, v in {**SHORT, "window": 5 if rule == "GPUMemoryIncrease" else 20}
              .items() if k in _params(rule)}  # fmt: skip
    engine = evaluate_profiler(folder, [create_profiler_rule(rule, params)], scan_interval=10)
    (result,) = engine.summaries()
    assert result["status"] == ("IssuesFound" if fires else "NoIssuesFound"), result
    assert result["datapoints"] > 0
    if fires:
        assert words in result["message"]
        assert result["triggered"] >= 1


def _params(rule: str) -> list[str]:
    from breedclf.profiler._rule import keyword_params

    return keyword_params(type(create_profiler_rule(rule)))


def test_aws_defaults_wait_for_1000_samples(tmp_path: Path) -> None:
    # 120 samples (a minute at 500 ms) of an idle GPU: AWS's patience has not run out.
    folder = record(tmp_path, lambda i: {"gpu0": 2.0, "cpu": 97.0, "gpu0_mem": 10.0}, 120)
    engine = evaluate_profiler(folder, [ProfilerReport()])
    assert engine.statuses["LowGPUUtilization"] == "NoIssuesFound"
    assert engine.statuses["CPUBottleneck"] == "NoIssuesFound"
    short = evaluate_profiler(folder, [ProfilerReport(**_short_run())], scan_interval=10)
    assert short.statuses["LowGPUUtilization"] == "IssuesFound"
    assert short.statuses["CPUBottleneck"] == "IssuesFound"
    assert short.statuses["ProfilerReport"] == "IssuesFound"


def _short_run() -> dict[str, object]:
    from breedclf.profiler import SHORT_RUN

    return dict(SHORT_RUN)


def test_gpu_rules_without_a_gpu_are_not_applicable(tmp_path: Path) -> None:
    folder = record(tmp_path, lambda i: {"cpu": 97.0, "io": 80.0}, 120)
    engine = evaluate_profiler(folder, [ProfilerReport(**_short_run())], scan_interval=10)
    gpu_rules = ["LowGPUUtilization", "CPUBottleneck", "IOBottleneck", "GPUMemoryIncrease",
                 "BatchSize", "LoadBalancing"]  # fmt: skip
    assert {r: engine.statuses[r] for r in gpu_rules} == dict.fromkeys(gpu_rules, "NotApplicable")
    assert engine.statuses["ProfilerReport"] == "NoIssuesFound"


def test_max_initialization_time(tmp_path: Path) -> None:
    folder = record(tmp_path, lambda i: {}, 30)
    # The recording says the process started 5 s before the fit, first step 0.1 s after it.
    assert evaluate_profiler(folder, [parse_profiler_rule("MaxInitializationTime")]).statuses == {
        "MaxInitializationTime": "NoIssuesFound"
    }
    strict = evaluate_profiler(
        folder, [parse_profiler_rule("MaxInitializationTime(threshold=0.05)")]
    )
    assert strict.statuses == {"MaxInitializationTime": "IssuesFound"}
    assert "first training step started after" in strict.findings[0].message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_rules_run_for_real_on_cuda(tmp_path: Path) -> None:
    from breedclf.config import TrainingConfig
    from breedclf.profiler import FrameworkMetrics, ProfilerRules, SectionProfiler, SystemMonitor
    from breedclf.training import Trainer
    from tests.profiler.conftest import profiler_test_net
    from tests.profiler.helpers import collate

    trainer = Trainer(
        profiler_test_net(),
        training=TrainingConfig(epochs=3, device="cuda", batch_size=8),
        callbacks=[SystemMonitor(interval=0.05), FrameworkMetrics(),
                   ProfilerRules([ProfilerReport(**_short_run())], scan_interval=1.0)],
        profiler=SectionProfiler(),
        run_dir=tmp_path,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(SleepyImages(960), batch_size=8, collate_fn=collate)
    trainer.fit(loader)
    data = load_profiler_data(tmp_path)
    assert data.series("GPUUtilization")
    assert data.series("GPUMemoryUtilization")
    statuses = json.loads((tmp_path / "profiler" / "statuses.json").read_text())
    assert statuses["LowGPUUtilization"] != "NotApplicable"
    assert statuses["BatchSize"] != "NotApplicable"


# ---------------------------------------------------------------------------- names, overrides


def test_profiler_report_takes_per_rule_overrides() -> None:
    report = ProfilerReport(
        CPUBottleneck_threshold=60, StepOutlier_stddev=5, opt_out_telemetry=True
    )
    cpu = next(r for r in report.rules if isinstance(r, CPUBottleneck))
    assert (cpu.threshold, cpu.cpu_threshold) == (60, 90)
    assert repr(report) == "ProfilerReport(CPUBottleneck_threshold=60, StepOutlier_stddev=5)"
    with pytest.raises(ConfigurationError, match="Did you mean 'CPUBottleneck_threshold'"):
        ProfilerReport(CPUBottlenek_threshold=60)
    with pytest.raises(ConfigurationError, match="did you mean 'threshold'"):
        ProfilerReport(CPUBottleneck_treshold=60)


def test_unknown_rules_and_parameters_suggest_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'LowGPUUtilization'"):
        create_profiler_rule("LowGPUUtilisation")
    with pytest.raises(ConfigurationError, match="did you mean 'n_outliers'"):
        parse_profiler_rule("StepOutlier(n_outlier=3)")
    assert create_profiler_rule("step_outlier").rule_name == "StepOutlier"
