"""The ProfilerRules callback (rules evaluated during training) and the offline evaluation."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from breedclf._io import atomic_path
from breedclf.debugger._rule import ISSUES_FOUND, Finding
from breedclf.debugger._trial import FINDINGS_FILE, STATUSES_FILE, append_line
from breedclf.profiler._data import PROFILER_DIR, RULES_FILE, TailReader, profiler_path
from breedclf.profiler._rule import DEFAULT_SCAN_INTERVAL, ProfilerRule, ProfilerRuleEngine
from breedclf.profiler._timing import SectionProfiler
from breedclf.training.callbacks.callback import Callback, StepOutput

if TYPE_CHECKING:
    from breedclf.training import Trainer

__all__ = [
    "ProfilerRules",
    "evaluate_profiler",
    "read_profiler_findings",
    "read_profiler_results",
]

log = logging.getLogger("breedclf.profiler")


class ProfilerRules(Callback):
    """Evaluates profiler rules while training runs, on the profiler's own files.

    Every ``scan_interval`` seconds (checked after each training step) it feeds the rules the
    window of system samples and step records that ended, logs each finding as a warning and
    appends it to ``profiler/findings.jsonl``; when training ends (or fails) it evaluates the
    last window and writes ``statuses.json`` and ``rules.json``. ``breedclf report`` evaluates
    the same windows of the same files again offline.

    Args:
        rules: The rules (``ProfilerReport()`` for all of them).
        scan_interval: Seconds of recorded time per window (SageMaker: 60).
        directory: The profiler folder (default ``<run_dir>/profiler``).
    """

    rank_zero_only: ClassVar[bool] = True
    order = 2100  # after FrameworkMetrics wrote the step

    def __init__(
        self,
        rules: Sequence[ProfilerRule],
        *,
        scan_interval: float = DEFAULT_SCAN_INTERVAL,
        directory: str | Path | None = None,
    ) -> None:
        self.rule_specs = list(rules)
        self.scan_interval = scan_interval
        self.directory = Path(directory) if directory is not None else None
        self.engine: ProfilerRuleEngine | None = None
        self._next_check = 0.0
        self._clock: SectionProfiler | None = None

    @property
    def statuses(self) -> dict[str, str]:
        """Each rule's status so far."""
        return self.engine.statuses if self.engine is not None else {}

    def on_fit_start(self, trainer: Trainer) -> None:
        """Set up the engine on the run's profiler folder."""
        directory = profiler_path(trainer, self.directory, "", "profiler rule results")
        if directory is None:
            return
        self.directory = directory
        self.engine = ProfilerRuleEngine(
            directory, self.rule_specs, scan_interval=self.scan_interval
        )
        profiler = trainer.profiler
        self._clock = profiler if isinstance(profiler, SectionProfiler) else None
        self._next_check = self._now() + self.scan_interval

    def _now(self) -> float:
        import time

        return self._clock.now() if self._clock is not None else time.time()

    def on_train_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        """Evaluate the windows that ended (a clock read on most steps)."""
        if self.engine is None:
            return
        now = self._now()
        if now < self._next_check:
            return
        self._next_check = now + self.scan_interval
        self._record(self.engine.advance(now))

    def on_fit_end(self, trainer: Trainer) -> None:
        """Evaluate the last window; write and log the statuses."""
        self._finish()
        for label, status in self.statuses.items():
            if status == ISSUES_FOUND:
                log.warning("profiler rule %s: %s", label, status)

    def teardown(self, trainer: Trainer) -> None:
        """A failed fit still gets its final evaluation and statuses."""
        self._finish()

    def _finish(self) -> None:
        if self.engine is None or self.engine.finished:
            return
        self._record(self.engine.finish())
        write_results(self.engine)

    def _record(self, findings: list[Finding]) -> None:
        assert self.directory is not None
        for finding in findings:
            self.directory.mkdir(parents=True, exist_ok=True)
            append_line(self.directory / FINDINGS_FILE, finding.to_json())
            log.warning("profiler: %s: %s. Try: %s", finding.rule, finding.message, finding.advice)


def write_results(engine: ProfilerRuleEngine) -> None:
    """Write ``statuses.json`` and ``rules.json`` of ``engine`` into its folder."""
    engine.directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(engine.directory / STATUSES_FILE) as tmp:
        tmp.write_text(json.dumps(engine.statuses, indent=1), encoding="utf-8")
    with atomic_path(engine.directory / RULES_FILE) as tmp:
        tmp.write_text(json.dumps(engine.summaries(), indent=1, default=str), encoding="utf-8")


def _folder(run_dir: str | Path) -> Path:
    root = Path(run_dir)
    return root / PROFILER_DIR if (root / PROFILER_DIR).is_dir() else root


def evaluate_profiler(
    run_dir: str | Path,
    rules: Sequence[ProfilerRule],
    *,
    scan_interval: float = DEFAULT_SCAN_INTERVAL,
) -> ProfilerRuleEngine:
    """Evaluate ``rules`` offline on a run's recorded profiler files (finished or killed).

    Returns the engine: its ``findings``, ``statuses`` and ``summaries()``. Nothing is written.

    Example:
        >>> engine = evaluate_profiler("runs/demo", [ProfilerReport()])     # doctest: +SKIP
        >>> engine.statuses["StepOutlier"]                                   # doctest: +SKIP
        'NoIssuesFound'
    """
    engine = ProfilerRuleEngine(_folder(run_dir), rules, scan_interval=scan_interval, grace=0.0)
    engine.finish()
    return engine


def read_profiler_findings(run_dir: str | Path) -> list[Finding]:
    """The findings the live rules wrote (``profiler/findings.jsonl``), in order.

    A resumed run's rules evaluate the recorded files from the start again: a finding that the
    interrupted attempt already wrote is listed once.
    """
    unique: dict[tuple[str, int, str, str], Finding] = {}
    for data in TailReader(_folder(run_dir) / FINDINGS_FILE).read():
        finding = Finding.from_json(data)
        unique.setdefault((finding.rule, finding.step, finding.tensor, finding.message), finding)
    return list(unique.values())


def read_profiler_results(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rule summaries the live rules wrote (``profiler/rules.json``; empty if none)."""
    path = _folder(run_dir) / RULES_FILE
    if not path.is_file():
        return []
    data: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return data
