"""The ``profiler`` section: on by default, ``null`` turns it off, names are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from breedclf.config import ExperimentConfig, validate_config
from breedclf.errors import ConfigurationError, UnknownNameError
from breedclf.experiment import Experiment, run
from breedclf.profiler import (
    FrameworkMetrics,
    NullProfiler,
    ProfilerRules,
    SectionProfiler,
    StepOutlier,
    SystemMonitor,
    TraceWindow,
)
from tests.profiler.conftest import experiment_config, write_class_tree


def test_the_profiler_is_on_by_default(tmp_path: Path) -> None:
    experiment = Experiment(ExperimentConfig(output_dir=tmp_path))
    assert isinstance(experiment.profiler, SectionProfiler)
    kinds = {type(cb) for cb in experiment.create_callbacks()}
    assert {SystemMonitor, FrameworkMetrics, ProfilerRules} <= kinds
    assert TraceWindow not in kinds


def test_rules_presets_and_the_trace_window_come_from_the_section(tmp_path: Path) -> None:
    config = validate_config(
        ExperimentConfig,
        {
            "output_dir": str(tmp_path),
            "profiler": {
                "preset": "short_run",
                "trace_steps": [3, 4],
                "rules": [{"name": "StepOutlier", "params": {"stddev": 4}}],
            },
        },
    )
    callbacks = Experiment(config).create_callbacks()
    (rules,) = [cb for cb in callbacks if isinstance(cb, ProfilerRules)]
    (rule,) = rules.rule_specs
    assert isinstance(rule, StepOutlier)
    assert (rule.stddev, rule.n_outliers, rule.min_steps) == (4, 3, 20)  # preset, user wins
    assert rules.scan_interval == 10.0
    (trace,) = [cb for cb in callbacks if isinstance(cb, TraceWindow)]
    assert (trace.start, trace.stop) == (3, 4)


def test_bad_sections_are_errors_that_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="start <= stop"):
        validate_config(ExperimentConfig, {"profiler": {"trace_steps": [5, 2]}})
    with pytest.raises(ConfigurationError, match="did you mean 'interval'"):
        validate_config(ExperimentConfig, {"profiler": {"intervall": 1}})
    typo = validate_config(
        ExperimentConfig,
        {"output_dir": str(tmp_path), "profiler": {"rules": [{"name": "StepOutliers"}]}},
    )
    with pytest.raises(UnknownNameError, match="Did you mean 'StepOutlier'"):
        Experiment(typo).create_callbacks()


def test_profiler_null_records_nothing(test_net: str, tmp_path: Path) -> None:
    root = write_class_tree(tmp_path / "data", 3, per_split={"train": 4, "valid": 2})
    out = tmp_path / "run"
    config = experiment_config(out, {"dataset": "imagefolder", "root": str(root)}, profiler=None)
    experiment = Experiment(config, progress=False)
    assert experiment.profiler is None
    run(experiment)
    assert isinstance(experiment.trainer.profiler, NullProfiler)
    assert not (out / "profiler").exists()
    assert not (out / "report.html").exists()
    assert (out / "model" / "model.safetensors").is_file()


def test_an_overwrite_clears_the_previous_runs_profiler_files(
    test_net: str, tmp_path: Path
) -> None:
    root = write_class_tree(tmp_path / "data", 3, per_split={"train": 4, "valid": 2})
    out = tmp_path / "run"
    config = experiment_config(out, {"dataset": "imagefolder", "root": str(root)})
    config = validate_config(ExperimentConfig, {**config.model_dump(mode="json"),
                                                "training": {"epochs": 1}})  # fmt: skip
    run(Experiment(config, progress=False))
    first = (out / "profiler" / "framework.jsonl").read_text().count('"kind": "start"')
    assert first == 1
    run(Experiment(config, progress=False), overwrite=True)
    assert (out / "profiler" / "framework.jsonl").read_text().count('"kind": "start"') == 1
