"""The saved trial: reductions of every saved step as append-only JSON lines, tensors on request.

Layout under ``<run_dir>/debugger/``::

    trial.jsonl            one JSON object per line, appended and fsynced as training runs
    tensors/<mode>-<step>.safetensors   full tensors, only for the collections/steps asked for
    findings.jsonl         one line per rule evaluation that found an issue
    statuses.json          each rule's final status (IssuesFound / NoIssuesFound)

``trial.jsonl`` holds two kinds of line. ``{"event": "start", "global_step": G, ...}`` opens
every ``fit`` (G > 0 for a resume: records written after step G by an interrupted attempt are
superseded and skipped by :func:`load_trial`). ``{"event": "record", "mode": "train"|"eval",
"step": S, "global_step": G, "epoch": E, "time": T, "tensors": {name: {reduction: value}}}``
holds one saved step; ``step`` is the optimizer step for ``train`` records and the epoch for
``eval`` records (one per validation pass).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from breedclf.errors import CheckpointError

__all__ = [
    "COLLECTION_OF",
    "Mode",
    "Record",
    "Trial",
    "TrialWriter",
    "collection_of",
    "load_trial",
]

log = logging.getLogger("breedclf.debugger")

Mode = Literal["train", "eval"]
TRIAL_FILE = "trial.jsonl"
FINDINGS_FILE = "findings.jsonl"
STATUSES_FILE = "statuses.json"
TENSOR_DIR = "tensors"
FORMAT = 1

Value = float | list[float]

#: Tensor-name prefixes (or exact names) of each collection.
COLLECTION_OF = {
    "losses": ("loss",),
    "gradients": ("gradients/",),
    "weights": ("weights/",),
    "relu_input": (".relu_input",),
    "relu_output": (".relu_output",),
    "tanh_input": (".tanh_input",),
    "sigmoid_input": (".sigmoid_input",),
    "labels": ("labels",),
    "predictions": ("predictions",),
    "inputs": ("inputs",),
}


def collection_of(tensor_name: str) -> str:
    """The collection a tensor name belongs to (``"gradients/head.weight"`` → ``gradients``)."""
    for collection, marks in COLLECTION_OF.items():
        for mark in marks:
            if tensor_name == mark or (mark.endswith("/") and tensor_name.startswith(mark)):
                return collection
            if mark.startswith(".") and tensor_name.endswith(mark):
                return collection
    return "other"


def _json_value(value: Value) -> Any:
    # JSON has no NaN/inf: keep them as strings that float() reads back.
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value if math.isfinite(value) else str(value)


def _from_json(value: Any) -> Value:
    if isinstance(value, list):
        return [float(v) for v in value]
    return float(value)


@dataclass(frozen=True)
class Record:
    """The reductions saved at one step.

    Attributes:
        mode: ``train`` (an optimizer step) or ``eval`` (a validation pass).
        step: The optimizer step for ``train``; the epoch for ``eval``.
        global_step: Optimizer steps taken when it was saved.
        epoch: The epoch it belongs to.
        time: Wall-clock seconds (``time.time()``) when it was saved.
        tensors: ``{tensor name: {reduction: value}}``; a value is a float or, for per-unit
            reductions, a list of floats.
    """

    mode: Mode
    step: int
    global_step: int
    epoch: int
    time: float
    tensors: dict[str, dict[str, Value]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``trial.jsonl``."""
        return {
            "event": "record",
            "mode": self.mode,
            "step": self.step,
            "global_step": self.global_step,
            "epoch": self.epoch,
            "time": self.time,
            "tensors": {
                name: {red: _json_value(v) for red, v in values.items()}
                for name, values in self.tensors.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        """Read a line written by :meth:`to_json`."""
        return cls(
            mode=data["mode"],
            step=int(data["step"]),
            global_step=int(data["global_step"]),
            epoch=int(data["epoch"]),
            time=float(data["time"]),
            tensors={
                name: {red: _from_json(v) for red, v in values.items()}
                for name, values in data["tensors"].items()
            },
        )


def append_line(path: Path, data: Mapping[str, Any], *, sync: bool = True) -> None:
    """Append one JSON line, flushed: a ``kill -9`` loses at most the line being written.

    ``sync`` also fsyncs it, so the line survives the machine going down too (findings and
    run starts; the per-step records skip it, as an fsync per saved step costs milliseconds).
    """
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(data) + "\n")
        fh.flush()
        if sync:
            os.fsync(fh.fileno())


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    r"""The JSON lines of ``path``; lines torn by a crash mid-write are skipped.

    A torn line is the last one without its newline, or, once a resumed writer ended it with
    :func:`end_torn_line`, an unparseable line followed by the resumed run's lines.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "log.jsonl"
        >>> _ = path.write_text('{"a": 1}\n{"a": 2, "b"')   # killed mid-write
        >>> end_torn_line(path)                             # a resumed writer ends it
        >>> with open(path, "a") as fh:
        ...     _ = fh.write('{"a": 3}\n')
        >>> [line["a"] for line in read_lines(path)]
        [1, 3]
    """
    if not path.is_file():
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return  # the write a crash interrupted
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s: skipped a line torn by an interrupted write", path)


def end_torn_line(path: Path) -> None:
    """End a last line that a killed writer left without its newline (the next line starts
    afresh; readers skip the torn one)."""
    if path.is_file() and path.stat().st_size:
        with open(path, "rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")


class TrialWriter:
    """Appends records (and requested tensors) to ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @property
    def path(self) -> Path:
        """The ``trial.jsonl`` file."""
        return self.directory / TRIAL_FILE

    def start(self, global_step: int, time: float) -> None:
        """Open a ``fit``: records of an interrupted attempt after ``global_step`` are void."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in (TRIAL_FILE, FINDINGS_FILE):
            end_torn_line(self.directory / name)
        append_line(
            self.path,
            {"event": "start", "format": FORMAT, "global_step": global_step, "time": time},
        )

    def write(self, record: Record, tensors: Mapping[str, torch.Tensor] | None = None) -> None:
        """Append ``record``; save ``tensors`` (full values) next to it when given."""
        if tensors:
            from safetensors.torch import save_file

            from breedclf._io import atomic_path

            target = self.directory / TENSOR_DIR / f"{record.mode}-{record.step:08d}.safetensors"
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        append_line(self.path, record.to_json(), sync=False)


def read_records(path: Path) -> list[Record]:
    """The live records of a ``trial.jsonl``: superseded ones (after a resume point) dropped."""
    records: list[Record] = []
    for data in read_lines(path):
        if data.get("event") == "start":
            resumed_at = int(data["global_step"])
            records = [r for r in records if r.global_step <= resumed_at]
        elif data.get("event") == "record":
            records.append(Record.from_json(data))
    return records


class Trial:
    """A saved trial, read like smdebug's ``create_trial(path)``.

    Example:
        >>> trial = load_trial("runs/demo")                                 # doctest: +SKIP
        >>> trial.tensor_names(collection="losses")                         # doctest: +SKIP
        ['loss']
        >>> [trial.value("loss", s) for s in trial.steps()]                  # doctest: +SKIP
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        path = self.directory / TRIAL_FILE
        if not path.is_file():
            raise CheckpointError(
                f"no debugger trial at {path}: train with a `debugger:` section (the default) "
                "to record one"
            )
        self.records = read_records(path)
        self._index = {(r.mode, r.step): r for r in self.records}

    def steps(self, mode: Mode = "train") -> list[int]:
        """Saved steps of ``mode`` (optimizer steps for ``train``, epochs for ``eval``)."""
        return sorted({r.step for r in self.records if r.mode == mode})

    def tensor_names(self, *, collection: str | None = None, mode: Mode | None = None) -> list[str]:
        """Names of the saved tensors, optionally of one collection (``gradients``, ...)."""
        names = {
            name
            for r in self.records
            if mode is None or r.mode == mode
            for name in r.tensors
            if collection is None or collection_of(name) == collection
        }
        return sorted(names)

    def record(self, step: int, mode: Mode = "train") -> Record:
        """The record of ``step``.

        Raises:
            CheckpointError: The step was not saved.
        """
        try:
            return self._index[(mode, step)]
        except KeyError:
            raise CheckpointError(
                f"step {step} ({mode}) was not saved; saved steps: {self.steps(mode)[:10]}..."
            ) from None

    def value(
        self, name: str, step: int, *, reduction: str | None = None, mode: Mode = "train"
    ) -> Any:
        """A tensor's reduction at ``step``; all of its reductions (a dict) without ``reduction``.

        For ``loss``, ``value("loss", step, reduction="mean")`` is the mean training loss since
        the previous saved step.
        """
        values = self.record(step, mode).tensors.get(name)
        if values is None:
            raise CheckpointError(f"tensor {name!r} was not saved at step {step} ({mode})")
        if reduction is None:
            return dict(values)
        if reduction not in values:
            raise CheckpointError(
                f"reduction {reduction!r} of {name!r} was not saved; saved: {sorted(values)}"
            )
        return values[reduction]

    def tensor(self, name: str, step: int, *, mode: Mode = "train") -> torch.Tensor:
        """The full tensor saved at ``step`` (only for ``debugger.save_tensors`` collections)."""
        from safetensors.torch import load_file

        path = self.directory / TENSOR_DIR / f"{mode}-{step:08d}.safetensors"
        if not path.is_file():
            raise CheckpointError(
                f"no full tensors saved at step {step} ({mode}); list the collection in "
                "debugger.save_tensors to save them"
            )
        tensors = load_file(str(path))
        if name not in tensors:
            raise CheckpointError(f"{name!r} is not among the tensors saved at step {step}")
        return tensors[name]


def load_trial(run_dir: str | Path) -> Trial:
    """Open the debugger trial of a run (``run_dir`` or its ``debugger/`` folder).

    Raises:
        CheckpointError: The run recorded no trial.
    """
    root = Path(run_dir)
    if (root / "debugger" / TRIAL_FILE).is_file() or not (root / TRIAL_FILE).is_file():
        root = root / "debugger"
    return Trial(root)
