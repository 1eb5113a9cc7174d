"""Timing sections for the training loop (the system/framework rule engine builds on this)."""

from breedclf.profiler._timing import NullProfiler, ProfileEvent, Profiler, SectionProfiler

__all__ = ["NullProfiler", "ProfileEvent", "Profiler", "SectionProfiler"]
