"""MetricsLogger: one JSON line per epoch and the stable, regex-friendly log line."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from breedclf.training._metrics import format_metrics_line
from breedclf.training.callbacks.callback import Callback, EpochResult

if TYPE_CHECKING:
    from breedclf.training.trainer import Trainer

__all__ = ["MetricsLogger"]

log = logging.getLogger("breedclf.metrics")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them readable
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


class MetricsLogger(Callback):
    """Appends epoch metrics to a JSONL file and logs one line per split.

    Each epoch logs ``epoch=N split=train ...`` then ``epoch=N split=valid ...`` (validation
    last, so a tuner that takes the last regex match reads validation). On resume, records of
    epochs after the checkpoint are dropped, so the file never holds duplicates.

    An epoch record holds ``epoch``, ``train`` and ``valid`` metrics (``train`` also has
    ``loss_unsmoothed``, comparable with validation's ``loss`` under label smoothing), ``lr``
    (the head's), ``lrs`` (every parameter group's, by name), ``seconds`` and
    ``images_per_second``.

    Args:
        path: The JSONL file (created with its parent directories).
    """

    rank_zero_only = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._offset: int | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        """Start a fresh file, or cut a resumed one back to the checkpoint."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as fh:
            # A restarted container (SageMaker spot) resumes with a fresh, shorter file:
            # truncate() past its end would pad it with NUL bytes.
            fh.truncate(min(self._offset or 0, fh.seek(0, os.SEEK_END)))

    def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:
        """Write the epoch record and log lines."""
        record = {
            "event": "epoch",
            "epoch": result.epoch,
            "train": result.train,
            "valid": result.valid,
            "lr": result.lr,
            "lrs": result.lrs,
            "seconds": result.seconds,
            "images_per_second": result.images_per_second,
        }
        self._append(record)
        log.info(format_metrics_line("train", result.train, epoch=result.epoch))
        if result.valid:
            log.info(format_metrics_line("valid", result.valid, epoch=result.epoch))

    def log_evaluation(self, split: str, metrics: dict[str, Any]) -> None:
        """Record a one-off evaluation (e.g. the final test split)."""
        self._append({"event": "evaluate", "split": split, "metrics": metrics})
        log.info(format_metrics_line(split, metrics))

    def _append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(_json_safe(record)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            self._offset = fh.tell()

    def state_dict(self) -> dict[str, Any]:
        """File length at checkpoint time."""
        return {"offset": self._offset}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the file length to cut back to."""
        self._offset = state["offset"]
