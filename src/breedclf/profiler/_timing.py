"""A passed-in profiler with a ``profile(name)`` context manager; the default does nothing."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol

__all__ = ["NullProfiler", "Profiler", "SectionProfiler"]


class Profiler(Protocol):
    """Anything with ``profile(name)`` returning a context manager around a timed section."""

    def profile(self, name: str) -> AbstractContextManager[None]:
        """Time the enclosed block under ``name``."""
        ...


class NullProfiler:
    """The default: times nothing and costs nothing."""

    def profile(self, name: str) -> AbstractContextManager[None]:
        """A no-op context manager."""
        return nullcontext()


class SectionProfiler:
    """Accumulates wall-clock seconds and call counts per section name.

    Example:
        >>> prof = SectionProfiler()
        >>> with prof.profile("forward"):
        ...     pass
        >>> prof.counts["forward"]
        1
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    @contextmanager
    def profile(self, name: str) -> Iterator[None]:
        """Add the block's duration to ``seconds[name]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start
            self.counts[name] += 1

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
