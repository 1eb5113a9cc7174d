"""The training loop, its metrics, optimizers and callbacks."""

from breedclf.training._checkpoint import read_checkpoint, read_checkpoint_metadata
from breedclf.training._metrics import (
    METRIC_LINE_REGEX,
    ClassificationMetrics,
    format_metrics_line,
)
from breedclf.training._optim import create_optimizer, create_scheduler
from breedclf.training.callbacks import (
    Callback,
    Checkpointer,
    EarlyStopping,
    EpochResult,
    GradientInfo,
    MetricsLogger,
    ProgressBar,
    StepOutput,
)
from breedclf.training.trainer import BatchLoader, Trainer, TrainState, resolve_device

__all__ = [
    "METRIC_LINE_REGEX",
    "BatchLoader",
    "Callback",
    "Checkpointer",
    "ClassificationMetrics",
    "EarlyStopping",
    "EpochResult",
    "GradientInfo",
    "MetricsLogger",
    "ProgressBar",
    "StepOutput",
    "TrainState",
    "Trainer",
    "create_optimizer",
    "create_scheduler",
    "format_metrics_line",
    "read_checkpoint",
    "read_checkpoint_metadata",
    "resolve_device",
]
