"""The profiler's files in a run directory, and reading them back (live or after the run).

Layout under ``<run_dir>/profiler/``::

    system.jsonl       system metrics, one JSON object per line in SageMaker's shape
                       {"Type", "Name", "Dimension", "Value", "NodeId", "Timestamp"}
    framework.jsonl    one line per training step (its sections' seconds), per epoch-level
                       section (validation, checkpoint), plus "start"/"end" lines of each fit
    findings.jsonl     one line per rule window that found an issue (the debugger's shape)
    rules.json         each rule's result: status, times triggered, data points, parameters
    statuses.json      {rule: "IssuesFound" | "NoIssuesFound" | "NotApplicable"}
    trace.json         the torch.profiler window (Chrome/Perfetto trace), when asked for
    top_operators.txt  its table of top operators

Both JSONL files are appended as the run goes and flushed line by line, so a killed run keeps
everything sampled before it died; a torn last line (killed mid-write) is skipped on reading.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from breedclf.training import Trainer

__all__ = [
    "FRAMEWORK_FILE",
    "PROFILER_DIR",
    "SYSTEM_FILE",
    "FrameworkData",
    "ProfilerData",
    "SectionRecord",
    "StepRecord",
    "SystemSample",
    "TailReader",
    "load_profiler_data",
]

log = logging.getLogger("breedclf.profiler")

PROFILER_DIR = "profiler"
SYSTEM_FILE = "system.jsonl"
FRAMEWORK_FILE = "framework.jsonl"
RULES_FILE = "rules.json"
TRACE_FILE = "trace.json"
TOP_OPERATORS_FILE = "top_operators.txt"

#: The training-step sections of :class:`~breedclf.profiler.SectionProfiler`, in loop order.
STEP_SECTIONS = ("data", "to_device", "forward", "backward", "grad_clip", "optimizer_step")


@dataclass(frozen=True, slots=True)
class SystemSample:
    """One system metric value (a line of ``system.jsonl``, SageMaker's field names).

    Attributes:
        type: ``cpu``, ``memory``, ``disk``, ``network`` or ``gpu``.
        name: ``cpu0`` ... per core, ``gpu0`` ... per GPU, or the type for totals.
        dimension: ``CPUUtilization``, ``I/OWaitPercentage``, ``MemoryUsedPercent``,
            ``GPUUtilization``, ``GPUMemoryUtilization``, ``ReadBytesPerSecond``, ...
        value: The value (percent, or bytes per second for disk and network).
        node: The host (``NodeId``).
        timestamp: Unix seconds.
    """

    type: str
    name: str
    dimension: str
    value: float
    node: str
    timestamp: float

    def to_json(self) -> dict[str, Any]:
        """SageMaker's JSON object."""
        return {
            "Type": self.type,
            "Name": self.name,
            "Dimension": self.dimension,
            "Value": self.value,
            "NodeId": self.node,
            "Timestamp": self.timestamp,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SystemSample:
        """Read :meth:`to_json` back."""
        return cls(
            str(data["Type"]),
            str(data["Name"]),
            str(data["Dimension"]),
            float(data["Value"]),
            str(data["NodeId"]),
            float(data["Timestamp"]),
        )


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One training step: when it started, how long it took, and its sections' seconds.

    ``duration`` runs from the start of the step's data wait to the end of the last callback's
    ``on_train_batch_end``: consecutive steps tile the epoch.
    """

    step: int
    epoch: int
    start: float
    duration: float
    sections: dict[str, float] = field(default_factory=dict)

    @property
    def data_wait(self) -> float:
        """Seconds spent waiting for the batch."""
        return self.sections.get("data", 0.0)


@dataclass(frozen=True, slots=True)
class SectionRecord:
    """An epoch-level section (``validation``, ``checkpoint``) or an epoch-level callback."""

    name: str
    step: int
    epoch: int
    start: float
    duration: float


@dataclass
class FrameworkData:
    """What ``framework.jsonl`` holds."""

    steps: list[StepRecord] = field(default_factory=list)
    sections: list[SectionRecord] = field(default_factory=list)
    starts: list[dict[str, Any]] = field(default_factory=list)
    ends: list[dict[str, Any]] = field(default_factory=list)

    def add(self, data: dict[str, Any]) -> None:
        """Add one line of the file."""
        kind = data.get("kind")
        if kind == "step":
            self.steps.append(
                StepRecord(
                    int(data["step"]),
                    int(data["epoch"]),
                    float(data["start"]),
                    float(data["duration"]),
                    {str(k): float(v) for k, v in data["sections"].items()},
                )
            )
        elif kind == "section":
            self.sections.append(
                SectionRecord(
                    str(data["name"]),
                    int(data["step"]),
                    int(data["epoch"]),
                    float(data["start"]),
                    float(data["duration"]),
                )
            )
        elif kind == "start":
            # A resumed fit starts again after its checkpoint: later steps of the interrupted
            # attempt are superseded.
            resumed_at = int(data.get("global_step", 0))
            self.steps = [s for s in self.steps if s.step <= resumed_at]
            self.starts.append(data)
        elif kind == "end":
            self.ends.append(data)


class TailReader:
    """Reads the complete lines appended to a JSONL file since the last call.

    A line still being written (no newline yet) waits for the next call, so a reader running
    beside the writer never sees half a record.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> Iterator[dict[str, Any]]:
        """The new complete lines, parsed."""
        if not self.path.is_file():
            return
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for line in chunk[: end + 1].splitlines():
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    # A line torn by a kill (ended by the next fit's newline), or bytes that are
                    # not text (a file a resume extended with NULs): skipped, the rest is read.
                    continue


@dataclass
class ProfilerData:
    """Everything the profiler recorded for a run (see the module docstring for the files)."""

    directory: Path
    system: list[SystemSample] = field(default_factory=list)
    framework: FrameworkData = field(default_factory=FrameworkData)

    @property
    def nodes(self) -> list[str]:
        """The hosts that sampled system metrics."""
        return sorted({s.node for s in self.system})

    def series(
        self, dimension: str, *, name: str | None = None
    ) -> dict[tuple[str, str], list[tuple[float, float]]]:
        """``{(node, name): [(timestamp, value), ...]}`` of one dimension."""
        out: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for s in self.system:
            if s.dimension == dimension and (name is None or s.name == name):
                out.setdefault((s.node, s.name), []).append((s.timestamp, s.value))
        return out

    @property
    def start_time(self) -> float | None:
        """The earliest timestamp recorded (system sample or fit start)."""
        times = [s.timestamp for s in self.system[:1]]
        times += [float(d["time"]) for d in self.framework.starts]
        return min(times) if times else None

    @property
    def end_time(self) -> float | None:
        """The latest timestamp recorded."""
        times = [s.timestamp for s in self.system[-1:]]
        times += [float(d["time"]) for d in self.framework.ends]
        times += [s.start + s.duration for s in self.framework.steps[-1:]]
        return max(times) if times else None


def load_profiler_data(run_dir: str | Path) -> ProfilerData:
    """Read a run's profiler files (``run_dir`` or its ``profiler/`` folder).

    Missing files read as empty: a run without a GPU has no GPU metrics, a run killed before
    its first step has no step records.
    """
    root = Path(run_dir)
    if (root / PROFILER_DIR).is_dir():
        root = root / PROFILER_DIR
    data = ProfilerData(root)
    data.system = [SystemSample.from_json(d) for d in TailReader(root / SYSTEM_FILE).read()]
    data.system.sort(key=lambda s: s.timestamp)
    for line in TailReader(root / FRAMEWORK_FILE).read():
        data.framework.add(line)
    return data


def profiler_path(trainer: Trainer, given: Path | None, name: str, what: str) -> Path | None:
    """``given``, else ``<run_dir>/profiler/<name>``; ``None`` (and a warning saying that
    ``what`` is not recorded) when the trainer has no run directory."""
    if given is not None:
        return given
    if trainer.run_dir is None:
        log.warning("profiler: the trainer has no run_dir; %s not recorded", what)
        return None
    return trainer.run_dir / PROFILER_DIR / name
