"""The training loop, its metrics, optimizers and callbacks."""

from breedclf.training._checkpoint import read_checkpoint, read_checkpoint_metadata
from breedclf.training._distributed import (
    DistributedContext,
    init_distributed,
    shutdown_distributed,
)
from breedclf.training._metrics import (
    METRIC_LINE_REGEX,
    ClassificationMetrics,
    format_metrics_line,
)
from breedclf.training._optim import create_optimizer, create_scheduler
from breedclf.training.callbacks import (
    CALLBACKS,
    Callback,
    Checkpointer,
    EarlyStopping,
    EpochResult,
    GradientInfo,
    MetricsLogger,
    ProgressBar,
    StepOutput,
    create_callback,
    list_callbacks,
    register_callback,
)
from breedclf.training.trainer import BatchLoader, Trainer, TrainState, resolve_device

__all__ = [
    "CALLBACKS",
    "METRIC_LINE_REGEX",
    "BatchLoader",
    "Callback",
    "Checkpointer",
    "ClassificationMetrics",
    "DistributedContext",
    "EarlyStopping",
    "EpochResult",
    "GradientInfo",
    "MetricsLogger",
    "ProgressBar",
    "StepOutput",
    "TrainState",
    "Trainer",
    "create_callback",
    "create_optimizer",
    "create_scheduler",
    "format_metrics_line",
    "init_distributed",
    "list_callbacks",
    "read_checkpoint",
    "read_checkpoint_metadata",
    "register_callback",
    "resolve_device",
    "shutdown_distributed",
]
