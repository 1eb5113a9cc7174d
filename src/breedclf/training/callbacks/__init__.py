"""Callbacks: everything that reacts to training without living in the loop."""

from breedclf.training.callbacks.callback import Callback, EpochResult, GradientInfo, StepOutput
from breedclf.training.callbacks.checkpointer import Checkpointer
from breedclf.training.callbacks.early_stopping import EarlyStopping
from breedclf.training.callbacks.metrics_logger import MetricsLogger
from breedclf.training.callbacks.progress_bar import ProgressBar
from breedclf.training.callbacks.registry import (
    CALLBACKS,
    create_callback,
    list_callbacks,
    register_callback,
)

__all__ = [
    "CALLBACKS",
    "Callback",
    "Checkpointer",
    "EarlyStopping",
    "EpochResult",
    "GradientInfo",
    "MetricsLogger",
    "ProgressBar",
    "StepOutput",
    "create_callback",
    "list_callbacks",
    "register_callback",
]
