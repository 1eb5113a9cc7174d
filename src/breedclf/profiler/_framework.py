"""Framework metrics from the trainer's profiler sections, and the torch.profiler trace window."""

from __future__ import annotations

import itertools
import json
import logging
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from breedclf.debugger._trial import end_torn_line
from breedclf.profiler._data import (
    FRAMEWORK_FILE,
    STEP_SECTIONS,
    TOP_OPERATORS_FILE,
    TRACE_FILE,
    profiler_path,
)
from breedclf.profiler._timing import ProfileEvent, SectionProfiler
from breedclf.training.callbacks.callback import Callback, StepOutput

if TYPE_CHECKING:
    from breedclf.data import Batch
    from breedclf.training import Trainer

__all__ = ["FrameworkMetrics", "TraceWindow"]

log = logging.getLogger("breedclf.profiler")


def _process_start() -> float | None:
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:
        return None


class FrameworkMetrics(Callback):
    """Writes per-step framework metrics from the trainer's :class:`SectionProfiler`.

    After every training step it appends one line to ``<run_dir>/profiler/framework.jsonl``:
    the step's start, its duration (from the start of its data wait to the end of the step's
    callbacks) and the seconds of each section (``data``, ``to_device``, ``forward``,
    ``backward``, ``grad_clip``, ``optimizer_step``, and ``callback.<Class>`` for each callback's
    hooks during the step). Epoch-level sections
    (``validation``, ``checkpoint``, epoch-end callbacks) get lines of their own. Lines are
    flushed as written: a killed run keeps every finished step.

    The trainer must time its sections with a :class:`SectionProfiler` (the
    :class:`~breedclf.experiment.Experiment` creates one when the config has a ``profiler``
    section); with another profiler nothing is recorded and a warning says so.

    Args:
        path: The JSONL file (default ``<run_dir>/profiler/framework.jsonl``).
        details: Facts about the run stored in the file's ``start`` line (the report shows them:
            model, dataset, loader workers, ...).
    """

    rank_zero_only: ClassVar[bool] = True
    order = 2000  # after every other callback: a step's record includes their hooks

    def __init__(self, *, path: str | Path | None = None, details: dict[str, Any] | None = None):
        self.path = Path(path) if path is not None else None
        self.details = dict(details or {})
        self._profiler: SectionProfiler | None = None
        self._fh: IO[str] | None = None
        self._seen = 0
        self._epoch = 0
        self._failed: str | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        """Open the file and write the fit's ``start`` line."""
        profiler = trainer.profiler
        if not isinstance(profiler, SectionProfiler):
            log.warning(
                "profiler: the trainer's profiler is a %s, not a SectionProfiler: no "
                "framework metrics are recorded",
                type(profiler).__name__,
            )
            return
        path = profiler_path(trainer, self.path, FRAMEWORK_FILE, "framework metrics")
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        end_torn_line(path)
        self._profiler = profiler
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole fit)
        self._seen = profiler.total_events
        self._failed = None
        model = trainer.model
        start = {
            "kind": "start",
            "time": profiler.now(),
            "process_start": _process_start(),
            "global_step": trainer.state.global_step,
            "epoch": trainer.state.epoch,
            "epochs": trainer.config.epochs,
            "steps_per_epoch": trainer.steps_per_epoch,
            "batch_size": trainer.config.batch_size,
            "device": str(trainer.device),
            "amp": str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else None,
            "arch": model.arch,
            "num_classes": model.num_classes,
            "cpu_count": os.cpu_count(),
            **self.details,
        }
        self._write(start)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Write the previous epoch's sections (validation, checkpoint)."""
        self._epoch = epoch
        self._drain(trainer, None)

    def on_train_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        """Write the step's record."""
        self._drain(trainer, step)

    def on_fit_end(self, trainer: Trainer) -> None:
        """Write the last epoch's sections."""
        self._drain(trainer, None)

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        """Remember that the fit failed (the ``end`` line says so)."""
        self._failed = type(exception).__name__

    def teardown(self, trainer: Trainer) -> None:
        """Write what is left and the ``end`` line; close the file."""
        if self._fh is None or self._profiler is None:
            return
        self._drain(trainer, None)
        self._write(
            {
                "kind": "end",
                "time": self._profiler.now(),
                "global_step": trainer.state.global_step,
                "epoch": trainer.state.epoch,
                "failed": self._failed,
                "totals": self._profiler.summary(),
            }
        )
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None

    # ------------------------------------------------------------------------------ helpers

    def _new_events(self) -> list[ProfileEvent]:
        assert self._profiler is not None
        total = self._profiler.total_events
        count, self._seen = total - self._seen, total
        if count <= 0:
            return []
        events = self._profiler.events
        recent = list(itertools.islice(reversed(events), min(count, len(events))))
        recent.reverse()
        return recent

    def _drain(self, trainer: Trainer, step: StepOutput | None) -> None:
        if self._fh is None or self._profiler is None:
            return
        current = step.global_step if step is not None else None
        sections: dict[str, float] = {}
        step_start: float | None = None
        first: float | None = None
        for event in self._new_events():
            if current is not None and event.step == current:
                if event.name in STEP_SECTIONS:
                    sections[event.name] = sections.get(event.name, 0.0) + event.duration
                    if event.name == "data":
                        step_start = event.start
                elif event.name.startswith("callback."):
                    # Per callback class: "callback.Debugger" (the hooks of a step summed).
                    name = event.name.rsplit(".", 1)[0]
                    sections[name] = sections.get(name, 0.0) + event.duration
                first = event.start if first is None else min(first, event.start)
                continue
            self._write(
                {
                    "kind": "section",
                    "name": event.name,
                    "step": event.step if event.step is not None else -1,
                    "epoch": self._epoch,
                    "start": event.start,
                    "duration": event.duration,
                }
            )
        if step is not None:
            start = step_start if step_start is not None else first
            if start is None:
                start = self._profiler.now()
            self._write(
                {
                    "kind": "step",
                    "step": step.global_step,
                    "epoch": step.epoch,
                    "start": start,
                    "duration": self._profiler.now() - start,
                    "sections": sections,
                }
            )

    def _write(self, data: dict[str, Any]) -> None:
        assert self._fh is not None
        self._fh.write(json.dumps(data) + "\n")
        self._fh.flush()


class TraceWindow(Callback):
    """Captures steps ``start`` to ``stop`` (1-based, inclusive) with :mod:`torch.profiler`.

    Writes a Chrome/Perfetto trace (``profiler/trace.json``: open it in ``chrome://tracing`` or
    https://ui.perfetto.dev) and a table of the top operators by self time
    (``profiler/top_operators.txt``). The capture runs from the start of step ``start``'s
    forward pass to the end of step ``stop``; CUDA kernels are included on a GPU.

    Args:
        start: First step captured.
        stop: Last step captured.
        directory: Where to write (default ``<run_dir>/profiler``).
    """

    rank_zero_only: ClassVar[bool] = True
    order = 1900

    def __init__(self, start: int, stop: int, *, directory: str | Path | None = None) -> None:
        if not 1 <= start <= stop:
            from breedclf.errors import ConfigurationError

            raise ConfigurationError(
                f"profiler.trace_steps must be [start, stop] with 1 <= start <= stop, got "
                f"[{start}, {stop}]"
            )
        self.start, self.stop = start, stop
        self.directory = Path(directory) if directory is not None else None
        self._profile: Any = None
        self.trace_path: Path | None = None

    def on_train_batch_start(self, trainer: Trainer, batch: Batch, batch_idx: int) -> None:
        """Start the capture at step ``start``."""
        if self._profile is None and trainer.state.global_step + 1 == self.start:
            import torch.profiler as tp

            activities = [tp.ProfilerActivity.CPU]
            if trainer.device.type == "cuda":
                activities.append(tp.ProfilerActivity.CUDA)
            self._profile = tp.profile(activities=activities, record_shapes=False)
            self._profile.__enter__()

    def on_train_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        """End the capture after step ``stop``."""
        if self._profile is not None and step.global_step >= self.stop:
            self._finish(trainer)

    def teardown(self, trainer: Trainer) -> None:
        """Write a capture that the run's end (or an error) cut short."""
        if self._profile is not None:
            self._finish(trainer)

    def _finish(self, trainer: Trainer) -> None:
        profile, self._profile = self._profile, None
        profile.__exit__(None, None, None)
        directory = profiler_path(trainer, self.directory, "", "the trace")
        if directory is None:
            return
        directory.mkdir(parents=True, exist_ok=True)
        self.trace_path = directory / TRACE_FILE
        profile.export_chrome_trace(str(self.trace_path))
        sort = "self_cuda_time_total" if trainer.device.type == "cuda" else "self_cpu_time_total"
        table = profile.key_averages().table(sort_by=sort, row_limit=25)
        (directory / TOP_OPERATORS_FILE).write_text(table, encoding="utf-8")
        log.info(
            "profiler: trace of steps %d-%d written to %s", self.start, self.stop, self.trace_path
        )
