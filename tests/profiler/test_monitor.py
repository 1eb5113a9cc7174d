"""The system monitor during real runs: sampling interval, stopping, surviving ``kill -9``."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from breedclf.experiment import RunResult
from breedclf.profiler import ProfilerReport, Report, SystemMonitor, load_profiler_data
from breedclf.training import Callback, Trainer
from breedclf.training.callbacks.callback import StepOutput
from tests.profiler.helpers import SleepyImages, profiled_fit

ROOT = Path(__file__).resolve().parents[2]


def monitor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "breedclf-system-monitor"]


def test_the_monitor_samples_at_its_interval_during_a_run_and_stops_after_it(
    three_class_run: tuple[Path, RunResult],
) -> None:
    data = load_profiler_data(three_class_run[0])
    stamps = sorted({s.timestamp for s in data.system})
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    gaps.sort()
    median = gaps[len(gaps) // 2]
    # Interval 0.1 s: never faster, and on a busy machine not much slower.
    assert 0.095 <= median <= 0.5
    span = stamps[-1] - stamps[0]
    assert len(stamps) >= 0.3 * span / 0.1
    # Every sample holds every metric of the machine, in SageMaker's shape.
    first = [s for s in data.system if s.timestamp == stamps[0]]
    cores = os.cpu_count() or 1
    assert sum(s.dimension == "CPUUtilization" for s in first) == cores
    assert {s.dimension for s in first} >= {
        "CPUUtilization", "I/OWaitPercentage", "MemoryUsedPercent",
    }  # fmt: skip
    line = json.loads((three_class_run[0] / "profiler" / "system.jsonl").read_text().split("\n")[0])
    assert list(line) == ["Type", "Name", "Dimension", "Value", "NodeId", "Timestamp"]
    # Sampling covered the whole fit and stopped with it.
    steps = data.framework.steps
    assert stamps[0] <= steps[0].start + 1.0
    assert stamps[-1] >= steps[-1].start
    assert monitor_threads() == []


class Boom(Callback):
    def on_train_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        if step.global_step == 5:
            raise RuntimeError("boom")


def test_the_monitor_stops_when_training_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        profiled_fit(tmp_path, [ProfilerReport()], dataset=SleepyImages(64), extra=[Boom()],
                     interval=0.05)  # fmt: skip
    assert monitor_threads() == []
    size = (tmp_path / "profiler" / "system.jsonl").stat().st_size
    assert size > 0
    time.sleep(0.2)
    assert (tmp_path / "profiler" / "system.jsonl").stat().st_size == size
    ends = load_profiler_data(tmp_path).framework.ends
    assert ends[-1]["failed"] == "RuntimeError"
    assert json.loads((tmp_path / "profiler" / "statuses.json").read_text())


def test_a_monitor_without_a_run_dir_records_nothing(caplog: pytest.LogCaptureFixture) -> None:
    from tests.profiler.conftest import profiler_test_net

    trainer = Trainer(profiler_test_net(), callbacks=[SystemMonitor()])
    trainer.fit([])
    assert "no run_dir; system metrics not recorded" in caplog.text


_TRAIN_FOREVER = """
import sys
sys.path.insert(0, {root!r})
from breedclf.config import ExperimentConfig, validate_config
from breedclf.experiment import Experiment
from breedclf.models._factory import register_model
from tests.profiler.conftest import NET, profiler_test_net, experiment_config
from pathlib import Path

register_model(NET)(profiler_test_net)
config = experiment_config(Path({out!r}), {{"dataset": "imagefolder", "root": {data!r}}})
config = validate_config(ExperimentConfig, {{**config.model_dump(mode="json"),
                                             "training": {{"epochs": 1000, "batch_size": 2}}}})
Experiment(config, progress=False).fit()
"""


def _complete_records(path: Path, marker: str) -> int:
    if not path.is_file():
        return 0
    return sum(marker in line for line in path.read_text(encoding="utf-8").split("\n")[:-1])


def _sample_times(path: Path) -> int:
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    return len({json.loads(line)["Timestamp"] for line in lines})


def test_samples_survive_kill_9(tmp_path: Path) -> None:
    from tests.profiler.conftest import write_class_tree

    data = write_class_tree(tmp_path / "data", 3, per_split={"train": 8, "valid": 2})
    out = tmp_path / "run"
    script = tmp_path / "train.py"
    script.write_text(_TRAIN_FOREVER.format(root=str(ROOT), out=str(out), data=str(data)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path)
    system, framework = out / "profiler" / "system.jsonl", out / "profiler" / "framework.jsonl"
    deadline = time.monotonic() + 300
    try:
        # Kill once both files hold enough records: 20 steps, and system samples from
        # three distinct sampling times (the monitor's clock is independent of the steps').
        while time.monotonic() < deadline and proc.poll() is None:
            if _complete_records(framework, '"kind": "step"') >= 20 and _sample_times(system) >= 3:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the training process ended by itself"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    for path in (system, framework):
        lines = path.read_text(encoding="utf-8").split("\n")
        complete = lines[:-1]  # the last element is "" or a line cut by the kill
        assert len(complete) >= 20
        for line in complete:
            json.loads(line)
    recorded = load_profiler_data(out)
    assert len(recorded.framework.steps) >= 20
    assert len({s.timestamp for s in recorded.system}) >= 3
    # The killed run still gets its report, marked as interrupted.
    report = Report(out)
    assert ("state", "interrupted (no end recorded: killed, or still running)") in report.summary()
    assert report.write().is_file()
