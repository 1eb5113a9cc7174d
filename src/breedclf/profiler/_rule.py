"""The profiler-rule interface, the registry, and the engine that feeds rules windows of data.

Rules read the profiler's files (system samples and step records) in windows of
``scan_interval`` seconds of recorded time, as SageMaker's rules scan 60 s windows. The live
callback and the offline ``breedclf report`` feed the same windows of the same files, so both
reach the same statuses.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from breedclf._registry import Registry
from breedclf.debugger._rule import (
    ISSUES_FOUND,
    NO_ISSUES_FOUND,
    Finding,
    check_params,
    parse_call,
)
from breedclf.errors import ConfigurationError
from breedclf.profiler._data import (
    FRAMEWORK_FILE,
    SYSTEM_FILE,
    FrameworkData,
    StepRecord,
    SystemSample,
    TailReader,
)

__all__ = [
    "NOT_APPLICABLE",
    "PROFILER_RULES",
    "ProfilerRule",
    "ProfilerRuleEngine",
    "Window",
    "create_profiler_rule",
    "list_profiler_rules",
    "parse_profiler_rule",
    "register_profiler_rule",
]

#: The status of a rule that had nothing to look at (a GPU rule on a machine without GPUs).
NOT_APPLICABLE = "NotApplicable"

#: SageMaker's rules scan 60 s windows (``scan_interval_us=60e6``).
DEFAULT_SCAN_INTERVAL = 60.0


@dataclass
class Window:
    """The data of one scan window, and what the run told about itself.

    Attributes:
        start: Start of the window (Unix seconds).
        end: End of the window.
        origin: When recording started (the first fit's start).
        process_start: When the training process started (for initialisation time).
        system: System samples of the window, in time order.
        steps: Training steps that started in the window.
        details: The ``start`` line of the latest fit (cores, loader workers, device, ...).
        final: The last window of the run (evaluated when training ends).
    """

    start: float
    end: float
    origin: float
    process_start: float | None
    system: list[SystemSample] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    final: bool = False

    def snapshots(self) -> list[list[SystemSample]]:
        """The window's system samples grouped by sample (one timestamp per node and sample)."""
        groups: dict[tuple[str, float], list[SystemSample]] = {}
        for s in self.system:
            groups.setdefault((s.node, s.timestamp), []).append(s)
        return list(groups.values())


class ProfilerRule:
    """Base class of profiler rules: stateful, fed one :class:`Window` at a time.

    Subclass, give ``__init__`` keyword-only parameters stored under the same names, implement
    :meth:`update`, and register with :func:`register_profiler_rule`. A rule keeps whatever it
    needs across windows (buffers of the last ``window`` values, counters) and returns the
    findings of the window; each window that returns findings counts once in
    :attr:`triggered` (SageMaker's "number of times triggered").
    """

    #: The AWS rule name (``LowGPUUtilization``); set by :func:`register_profiler_rule`.
    rule_name: ClassVar[str] = ""
    #: What the rule checks, one sentence.
    description: ClassVar[str] = ""
    #: What to try when it fires.
    advice: ClassVar[str] = ""

    label: str = ""
    triggered: int = 0
    evaluations: int = 0
    datapoints: int = 0
    applicable: bool = True
    last_message: str = ""

    def params(self) -> dict[str, Any]:
        """The rule's parameters and their values."""
        return {name: getattr(self, name) for name in keyword_params(type(self))}

    def update(self, window: Window) -> list[Finding]:
        """Take one window's data; the findings of this window."""
        raise NotImplementedError

    def evaluate(self, window: Window) -> list[Finding]:
        """:meth:`update` with one window and count it."""
        found = self.update(window)
        self.evaluations += 1
        if found:
            self.triggered += 1
            self.last_message = found[-1].message
        return found

    @property
    def status(self) -> str:
        """``IssuesFound``, ``NoIssuesFound``, or ``NotApplicable`` (nothing to look at)."""
        if self.triggered:
            return ISSUES_FOUND
        return NO_ISSUES_FOUND if self.applicable else NOT_APPLICABLE

    def summary(self) -> dict[str, Any]:
        """What the report shows: status, counts, parameters, the last message, details."""
        return {
            "rule": self.label or self.rule_name,
            "status": self.status,
            "triggered": self.triggered,
            "evaluations": self.evaluations,
            "datapoints": self.datapoints,
            "description": self.description,
            "advice": self.advice,
            "message": self.last_message or self.waiting(),
            "params": {k: _plain(v) for k, v in self.params().items()},
            "details": self.details(),
        }

    def details(self) -> dict[str, Any]:
        """Rule-specific figures for the report (JSON-safe)."""
        return {}

    def waiting(self) -> str:
        """Why the rule has not looked yet (its patience not run out), or ``""``."""
        return ""

    def _waiting_for(self, seen: int, needed: int, what: str) -> str:
        if not self.applicable or seen > needed:
            return ""
        return (
            f"not evaluated: saw {seen} {what}, waits for more than {needed} "
            "(profiler.preset: short_run for short runs)"
        )

    def finding(self, window: Window, metric: str, value: float, message: str) -> Finding:
        """A finding of this rule in ``window`` (the debugger's :class:`Finding` shape)."""
        last = window.steps[-1] if window.steps else None
        step = last.step if last else 0
        return Finding(
            rule=self.label or self.rule_name,
            step=step,
            mode="train",
            epoch=last.epoch if last else 0,
            global_step=step,
            tensor=metric,
            value=float(value),
            message=message,
            advice=self.advice,
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.rule_name}({args})"


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def keyword_params(cls: type) -> list[str]:
    """The keyword-only parameters of ``cls.__init__`` (a rule's parameters)."""
    return [
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()  # type: ignore[misc]
        if p.kind is p.KEYWORD_ONLY
    ]


# ---------------------------------------------------------------------------------- registry

PR = TypeVar("PR", bound=type[ProfilerRule])

PROFILER_RULES: Registry[type[ProfilerRule]] = Registry("profiler rule")


def register_profiler_rule(cls: PR) -> PR:
    """Register a :class:`ProfilerRule` under its class name (AWS's rule names are classes).

    Example:
        >>> from breedclf.profiler import PROFILER_RULES, ProfilerRule, register_profiler_rule
        >>> with PROFILER_RULES.scoped():
        ...     @register_profiler_rule
        ...     class SlowSteps(ProfilerRule):
        ...         def __init__(self, *, seconds: float = 1.0) -> None:
        ...             self.seconds = seconds
        ...         def update(self, window):
        ...             slow = [s for s in window.steps if s.duration > self.seconds]
        ...             self.datapoints += len(window.steps)
        ...             return [self.finding(window, "step", s.duration, "slow") for s in slow]
        ...     SlowSteps.rule_name
        'SlowSteps'
    """
    cls.rule_name = cls.__name__
    PROFILER_RULES.add(cls.rule_name, cls)
    return cls


def _load_builtin_rules() -> None:
    importlib.import_module("breedclf.profiler._rules")


def list_profiler_rules(pattern: str = "*") -> list[str]:
    """Registered profiler rule names matching a wildcard pattern."""
    _load_builtin_rules()
    return PROFILER_RULES.list(pattern)


def _camel(name: str) -> str:
    if any(c.isupper() for c in name):
        return name
    return "".join(part.capitalize() for part in name.split("_"))


def create_profiler_rule(name: str, params: Mapping[str, Any] | None = None) -> ProfilerRule:
    """Build a registered profiler rule by name (``CPUBottleneck``) with keyword parameters.

    ``ProfilerReport`` builds every built-in rule; its parameters are ``<Rule>_<param>``
    overrides, as in SageMaker (``ProfilerReport(CPUBottleneck_threshold=60)``).

    Raises:
        UnknownNameError: No such rule (close matches are listed).
        ConfigurationError: A parameter is unknown (the closest valid one is named) or invalid.
    """
    _load_builtin_rules()
    key = name if name in PROFILER_RULES else _camel(name)
    cls = PROFILER_RULES.get(key if key in PROFILER_RULES else name)
    params = dict(params or {})
    accepted = keyword_params(cls)
    takes_any = any(
        p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values()
    )
    if not takes_any:
        check_params(f"profiler rule {cls.rule_name!r}", params, accepted)
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"profiler rule {cls.rule_name!r}: {exc}") from None


def parse_profiler_rule(text: str) -> ProfilerRule:
    """Build a rule from ``"CPUBottleneck(threshold=60)"`` or ``"ProfilerReport"``.

    Raises:
        ConfigurationError: Not of that form, or an unknown rule/parameter.
    """
    name, params = parse_call(text, what="profiler rule", example="'CPUBottleneck(threshold=60)'")
    return create_profiler_rule(name, params)


# ------------------------------------------------------------------------------------ engine


class ProfilerRuleEngine:
    """Reads a run's profiler files as they grow and feeds rules window by window.

    Windows start at the first fit's start and last ``scan_interval`` seconds of recorded
    time. :meth:`advance` evaluates windows that ended (with a grace period for samples still
    being written); :meth:`finish` evaluates the rest as the final window.

    Args:
        directory: The run's ``profiler/`` folder.
        rules: The rules (``ProfilerReport`` expands into its sub-rules).
        scan_interval: Window length in seconds.
        grace: Seconds a window's end must lie in the past before it is evaluated live.
    """

    def __init__(
        self,
        directory: str | Path,
        rules: Sequence[ProfilerRule],
        *,
        scan_interval: float = DEFAULT_SCAN_INTERVAL,
        grace: float = 2.0,
    ) -> None:
        self.directory = Path(directory)
        self.rules = expand_rules(rules)
        self.scan_interval = scan_interval
        self.grace = grace
        self.findings: list[Finding] = []
        self._system = TailReader(self.directory / SYSTEM_FILE)
        self._framework_reader = TailReader(self.directory / FRAMEWORK_FILE)
        self._framework = FrameworkData()
        self._pending_system: list[SystemSample] = []
        self._pending_steps: list[StepRecord] = []
        self._used_steps = 0
        self._origin: float | None = None
        self._process_start: float | None = None
        self._details: dict[str, Any] = {}
        self._next = 0.0
        self.finished = False

    @property
    def statuses(self) -> dict[str, str]:
        """``{rule label: status}``."""
        return {rule.label: rule.status for rule in self.rules}

    def summaries(self) -> list[dict[str, Any]]:
        """Every rule's :meth:`ProfilerRule.summary`."""
        return [rule.summary() for rule in self.rules]

    def _read(self) -> None:
        self._pending_system.extend(SystemSample.from_json(d) for d in self._system.read())
        starts = len(self._framework.starts)
        for line in self._framework_reader.read():
            self._framework.add(line)
        if len(self._framework.starts) > starts:
            first = self._framework.starts[0]
            self._details = dict(self._framework.starts[-1])
            if self._origin is None:
                self._origin = float(first["time"])
                process = first.get("process_start")
                self._process_start = float(process) if process is not None else None
                self._next = self._origin + self.scan_interval
        if self._origin is None and self._pending_system:
            self._origin = min(s.timestamp for s in self._pending_system)
            self._next = self._origin + self.scan_interval
        steps = self._framework.steps
        # A resume drops superseded steps: start over at the surviving ones.
        self._used_steps = min(self._used_steps, len(steps))
        self._pending_steps.extend(steps[self._used_steps :])
        self._used_steps = len(steps)

    def advance(self, now: float) -> list[Finding]:
        """Evaluate every window that ended before ``now - grace``; the new findings."""
        self._read()
        found: list[Finding] = []
        while self._origin is not None and self._next <= now - self.grace:
            found += self._evaluate(self._next, final=False)
            self._next += self.scan_interval
        return found

    def finish(self) -> list[Finding]:
        """Evaluate all remaining data as the final window (once)."""
        if self.finished:
            return []
        self._read()
        found: list[Finding] = []
        if self._origin is not None:
            last = max(
                [s.timestamp for s in self._pending_system]
                + [s.start for s in self._pending_steps]
                + [self._next - self.scan_interval]
            )
            while self._next <= last:
                found += self._evaluate(self._next, final=False)
                self._next += self.scan_interval
            found += self._evaluate(math.inf, final=True)
        self.finished = True
        return found

    def _evaluate(self, end: float, *, final: bool) -> list[Finding]:
        assert self._origin is not None
        system = [s for s in self._pending_system if s.timestamp < end]
        steps = [s for s in self._pending_steps if s.start < end]
        self._pending_system = self._pending_system[len(system) :]
        self._pending_steps = self._pending_steps[len(steps) :]
        window = Window(
            start=end - self.scan_interval
            if math.isfinite(end)
            else self._next - self.scan_interval,
            end=end,
            origin=self._origin,
            process_start=self._process_start,
            system=system,
            steps=steps,
            details=self._details,
            final=final,
        )
        found = [f for rule in self.rules for f in rule.evaluate(window)]
        self.findings += found
        return found


def expand_rules(rules: Iterable[ProfilerRule]) -> list[ProfilerRule]:
    """Replace a ``ProfilerReport`` by its sub-rules (and itself); label repeats ``_2``, ..."""
    out: list[ProfilerRule] = []
    for rule in rules:
        out += rule.expand() if hasattr(rule, "expand") else [rule]
    seen: dict[str, int] = {}
    for rule in out:
        base = rule.label or rule.rule_name
        seen[base] = seen.get(base, 0) + 1
        rule.label = base if seen[base] == 1 else f"{base}_{seen[base]}"
    return out
