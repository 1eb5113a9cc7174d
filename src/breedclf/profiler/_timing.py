"""A passed-in profiler: ``profile(name, step=...)`` context managers; the default does nothing.

The trainer opens these sections, each tagged with the training step it belongs to:

========================================  =========================================================
``data``                                  waiting for the next batch from the loader
``to_device``                             host → device copy of the batch
``forward``                               forward pass and loss
``backward``                              backward pass (and AMP unscaling)
``grad_clip``                             gradient clipping (only when ``grad_clip_norm`` is set)
``optimizer_step``                        optimizer and scheduler step
``validation``                            the validation pass after an epoch
``checkpoint``                            the :class:`~breedclf.training.Checkpointer`'s writes
``callback.<ClassName>.<hook>``           each callback hook call (e.g.
                                          ``callback.MetricsLogger.on_epoch_end``)
========================================  =========================================================

A section's step is the optimizer step that a training batch produces (``global_step`` after
it, 1-based); sections outside a batch (validation, epoch ends) carry the last completed step.
Sections nest: ``checkpoint`` runs inside ``callback.Checkpointer.on_epoch_end``, and validation
hooks inside ``validation``.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Protocol

import torch

__all__ = ["NullProfiler", "ProfileEvent", "Profiler", "SectionProfiler"]


class Profiler(Protocol):
    """Anything with ``profile(name, step=...)`` returning a context manager around a section."""

    def profile(self, name: str, *, step: int | None = None) -> AbstractContextManager[None]:
        """Time the enclosed block under ``name``, at training step ``step`` (if known)."""
        ...


_NO_OP: AbstractContextManager[None] = nullcontext()


class NullProfiler:
    """The default: times nothing and costs nothing (one shared, reusable no-op context)."""

    def profile(self, name: str, *, step: int | None = None) -> AbstractContextManager[None]:
        """The shared no-op context manager."""
        return _NO_OP


@dataclass(frozen=True, slots=True)
class ProfileEvent:
    """One timed section.

    Attributes:
        name: The section (``forward``, ``callback.Checkpointer.on_epoch_end``, ...).
        step: The training step it belongs to (``None`` when the caller gave none).
        start: When it started, in seconds since the Unix epoch (comparable with system metrics
            sampled by other processes); derived from a monotonic clock, so events never go
            back in time.
        duration: Its length in seconds.
    """

    name: str
    step: int | None
    start: float
    duration: float


class SectionProfiler:
    """Records every section as a :class:`ProfileEvent`, and per-name totals.

    CUDA runs asynchronously: without synchronisation a section measures how long the host took
    to *queue* its GPU work, and the wait shows up in whichever later section first needs a
    result. ``synchronize=True`` waits for the GPU at both ends of every section, so each
    section measures its own GPU work (at the cost of the CPU/GPU overlap it removes; use it to
    find the slow part, not to measure throughput). It has no effect when CUDA is not in use.

    Args:
        synchronize: Synchronise CUDA at the start and end of each section.
        max_events: Most events kept (the oldest are dropped first); ``None`` keeps all. Totals
            (:attr:`seconds`, :attr:`counts`) always cover the whole run.

    Example:
        >>> prof = SectionProfiler()
        >>> with prof.profile("forward", step=1):
        ...     pass
        >>> prof.counts["forward"], prof.events[0].name, prof.events[0].step
        (1, 'forward', 1)
    """

    def __init__(self, *, synchronize: bool = False, max_events: int | None = 100_000) -> None:
        self.synchronize = synchronize
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.events: deque[ProfileEvent] = deque(maxlen=max_events)
        # One wall-clock reading anchors the monotonic clock to Unix time.
        self._wall_origin = time.time()
        self._perf_origin = time.perf_counter()

    @contextmanager
    def profile(self, name: str, *, step: int | None = None) -> Iterator[None]:
        """Record the block's start and duration under ``name`` and ``step``."""
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            duration = time.perf_counter() - start
            self.seconds[name] += duration
            self.counts[name] += 1
            wall = self._wall_origin + (start - self._perf_origin)
            self.events.append(ProfileEvent(name, step, wall, duration))

    @property
    def total_events(self) -> int:
        """Sections recorded so far (including those :attr:`events` no longer holds)."""
        return sum(self.counts.values())

    def now(self) -> float:
        """The current time on the clock of :attr:`ProfileEvent.start` (Unix seconds)."""
        return self._wall_origin + (time.perf_counter() - self._perf_origin)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{name: {"seconds", "calls", "mean_ms"}}`` sorted by total time."""
        return {
            name: {
                "seconds": secs,
                "calls": float(self.counts[name]),
                "mean_ms": 1000 * secs / max(1, self.counts[name]),
            }
            for name, secs in sorted(self.seconds.items(), key=lambda kv: -kv[1])
        }

    def _sync(self) -> None:
        # Only a CUDA context that exists is waited for: creating one would cost GPU memory.
        if self.synchronize and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
            torch.cuda.synchronize()
