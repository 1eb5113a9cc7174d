"""Builds the profiler objects a ``profiler:`` config section describes."""

from __future__ import annotations

from typing import Any

from breedclf.config import ProfilerConfig
from breedclf.profiler._callback import ProfilerRules
from breedclf.profiler._framework import FrameworkMetrics, TraceWindow
from breedclf.profiler._rule import ProfilerRule, create_profiler_rule
from breedclf.profiler._rules import SHORT_RUN
from breedclf.profiler._system import SystemMonitor
from breedclf.profiler._timing import SectionProfiler
from breedclf.training.callbacks.callback import Callback

__all__ = [
    "SHORT_RUN_SCAN_INTERVAL",
    "create_profiler_callbacks",
    "create_profiler_rules",
    "create_section_profiler",
    "resolve_scan_interval",
]

#: Window length of the ``short_run`` preset, in seconds.
SHORT_RUN_SCAN_INTERVAL = 10.0


def create_profiler_rules(config: ProfilerConfig) -> list[ProfilerRule]:
    """The rules of a ``profiler:`` section, with the preset applied where not overridden.

    Raises:
        UnknownNameError: A rule name is not registered (close matches are listed).
        ConfigurationError: A parameter is unknown or invalid.
    """
    rules = []
    for spec in config.rules:
        params: dict[str, Any] = dict(spec.params)
        if config.preset == "short_run":
            if spec.name == "ProfilerReport":
                params = {**SHORT_RUN, **params}
            else:
                prefix = f"{spec.name}_"
                preset = {k[len(prefix) :]: v for k, v in SHORT_RUN.items() if k.startswith(prefix)}
                params = {**preset, **params}
        rules.append(create_profiler_rule(spec.name, params))
    return rules


def resolve_scan_interval(config: ProfilerConfig) -> float:
    """The window length: the configured one, or the preset's when none was given."""
    if config.preset == "short_run" and "scan_interval" not in config.model_fields_set:
        return SHORT_RUN_SCAN_INTERVAL
    return config.scan_interval


def create_profiler_callbacks(
    config: ProfilerConfig, *, details: dict[str, Any] | None = None
) -> list[Callback]:
    """The callbacks of a ``profiler:`` section: monitor, framework metrics, rules, trace.

    Args:
        config: The section.
        details: Facts about the run recorded with the framework metrics (dataset, loader
            workers, ...), shown in the report.
    """
    callbacks: list[Callback] = [
        SystemMonitor(interval=config.interval),
        FrameworkMetrics(details=details),
    ]
    rules = create_profiler_rules(config)
    if rules:
        callbacks.append(ProfilerRules(rules, scan_interval=resolve_scan_interval(config)))
    if config.trace_steps is not None:
        callbacks.append(TraceWindow(*config.trace_steps))
    return callbacks


def create_section_profiler(config: ProfilerConfig) -> SectionProfiler:
    """The trainer's section profiler for a ``profiler:`` section."""
    return SectionProfiler(synchronize=config.synchronize)
