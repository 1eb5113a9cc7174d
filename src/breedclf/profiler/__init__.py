"""breedclf's profiler: system monitor, framework metrics, SageMaker's profiler rules, report.

The trainer times its sections with a :class:`SectionProfiler`; the :class:`SystemMonitor`
samples the machine on a background thread; :class:`FrameworkMetrics` writes per-step metrics;
:class:`ProfilerRules` evaluates SageMaker's profiler rules (same names and parameters) during
training, and :class:`Report` writes ``report.html``. An experiment's ``profiler:`` section
builds all of them (on by default). See ``docs/profiler.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from breedclf.profiler._callback import (
        ProfilerRules,
        evaluate_profiler,
        read_profiler_findings,
        read_profiler_results,
    )
    from breedclf.profiler._config import (
        create_profiler_callbacks,
        create_profiler_rules,
        create_section_profiler,
    )
    from breedclf.profiler._data import (
        ProfilerData,
        StepRecord,
        SystemSample,
        load_profiler_data,
    )
    from breedclf.profiler._framework import FrameworkMetrics, TraceWindow
    from breedclf.profiler._report import Report, write_report
    from breedclf.profiler._rule import (
        NOT_APPLICABLE,
        PROFILER_RULES,
        ProfilerRule,
        ProfilerRuleEngine,
        Window,
        create_profiler_rule,
        list_profiler_rules,
        parse_profiler_rule,
        register_profiler_rule,
    )
    from breedclf.profiler._rules import (
        SHORT_RUN,
        BatchSize,
        CPUBottleneck,
        Dataloader,
        GPUMemoryIncrease,
        IOBottleneck,
        LoadBalancing,
        LowGPUUtilization,
        MaxInitializationTime,
        OverallFrameworkMetrics,
        OverallSystemUsage,
        ProfilerReport,
        StepOutlier,
    )
    from breedclf.profiler._system import SystemMonitor, SystemSampler
    from breedclf.profiler._timing import NullProfiler, ProfileEvent, Profiler, SectionProfiler

_TIMING = "breedclf.profiler._timing"
_EXPORTS = {
    "NullProfiler": _TIMING,
    "ProfileEvent": _TIMING,
    "Profiler": _TIMING,
    "SectionProfiler": _TIMING,
    "ProfilerRules": "breedclf.profiler._callback",
    "evaluate_profiler": "breedclf.profiler._callback",
    "read_profiler_findings": "breedclf.profiler._callback",
    "read_profiler_results": "breedclf.profiler._callback",
    "create_profiler_callbacks": "breedclf.profiler._config",
    "create_profiler_rules": "breedclf.profiler._config",
    "create_section_profiler": "breedclf.profiler._config",
    "ProfilerData": "breedclf.profiler._data",
    "StepRecord": "breedclf.profiler._data",
    "SystemSample": "breedclf.profiler._data",
    "load_profiler_data": "breedclf.profiler._data",
    "FrameworkMetrics": "breedclf.profiler._framework",
    "TraceWindow": "breedclf.profiler._framework",
    "Report": "breedclf.profiler._report",
    "write_report": "breedclf.profiler._report",
    "NOT_APPLICABLE": "breedclf.profiler._rule",
    "PROFILER_RULES": "breedclf.profiler._rule",
    "ProfilerRule": "breedclf.profiler._rule",
    "ProfilerRuleEngine": "breedclf.profiler._rule",
    "Window": "breedclf.profiler._rule",
    "create_profiler_rule": "breedclf.profiler._rule",
    "list_profiler_rules": "breedclf.profiler._rule",
    "parse_profiler_rule": "breedclf.profiler._rule",
    "register_profiler_rule": "breedclf.profiler._rule",
    "SHORT_RUN": "breedclf.profiler._rules",
    "BatchSize": "breedclf.profiler._rules",
    "CPUBottleneck": "breedclf.profiler._rules",
    "Dataloader": "breedclf.profiler._rules",
    "GPUMemoryIncrease": "breedclf.profiler._rules",
    "IOBottleneck": "breedclf.profiler._rules",
    "LoadBalancing": "breedclf.profiler._rules",
    "LowGPUUtilization": "breedclf.profiler._rules",
    "MaxInitializationTime": "breedclf.profiler._rules",
    "OverallFrameworkMetrics": "breedclf.profiler._rules",
    "OverallSystemUsage": "breedclf.profiler._rules",
    "ProfilerReport": "breedclf.profiler._rules",
    "StepOutlier": "breedclf.profiler._rules",
    "SystemMonitor": "breedclf.profiler._system",
    "SystemSampler": "breedclf.profiler._system",
}

__all__ = [
    "NOT_APPLICABLE",
    "PROFILER_RULES",
    "SHORT_RUN",
    "BatchSize",
    "CPUBottleneck",
    "Dataloader",
    "FrameworkMetrics",
    "GPUMemoryIncrease",
    "IOBottleneck",
    "LoadBalancing",
    "LowGPUUtilization",
    "MaxInitializationTime",
    "NullProfiler",
    "OverallFrameworkMetrics",
    "OverallSystemUsage",
    "ProfileEvent",
    "Profiler",
    "ProfilerData",
    "ProfilerReport",
    "ProfilerRule",
    "ProfilerRuleEngine",
    "ProfilerRules",
    "Report",
    "SectionProfiler",
    "StepOutlier",
    "StepRecord",
    "SystemMonitor",
    "SystemSample",
    "SystemSampler",
    "TraceWindow",
    "Window",
    "create_profiler_callbacks",
    "create_profiler_rule",
    "create_profiler_rules",
    "create_section_profiler",
    "evaluate_profiler",
    "list_profiler_rules",
    "load_profiler_data",
    "parse_profiler_rule",
    "read_profiler_findings",
    "read_profiler_results",
    "register_profiler_rule",
    "write_report",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the CLI registers `breedclf report` without importing torch, the
    # trainer imports the timing classes, and the rest imports the training callbacks (which
    # import the trainer).
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module != _TIMING:
        importlib.import_module("breedclf.profiler._rules")  # registers the built-in rules
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
