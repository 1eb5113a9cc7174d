"""Reading the monitored validation metric (shared by model selection and early stopping)."""

from __future__ import annotations

import math
from typing import Any, Literal

Monitor = Literal["valid_acc", "valid_loss"]


def monitored_value(metrics: dict[str, Any], monitor: Monitor) -> float:
    """The value of ``monitor`` in a validation metrics dict (NaN if absent)."""
    return float(metrics.get("acc" if monitor == "valid_acc" else "loss", math.nan))


def selection_key(metrics: dict[str, Any], monitor: Monitor) -> tuple[float, float]:
    """Higher is better: the monitored metric first, the other one to break ties.

    Accuracy on a small validation split ties often (several epochs at 1.0); the lower loss then
    picks the more confident model.
    """
    acc = float(metrics.get("acc", math.nan))
    loss = float(metrics.get("loss", math.nan))
    return (acc, -loss) if monitor == "valid_acc" else (-loss, acc)


def improved(value: float, best: float | None, monitor: Monitor, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (NaN never improves)."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    if monitor == "valid_acc":
        return value > best + min_delta
    return value < best - min_delta
