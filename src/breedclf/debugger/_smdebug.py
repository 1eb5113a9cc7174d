"""Registers SageMaker's own smdebug hook when smdebug and a debug hook config are present.

AWS's Debugger rules (for users who still have it) read tensors that smdebug's hook writes.
breedclf's rules do not need it. The hook only lives on the training model: saved models hold
plain weights and never need smdebug to load or serve.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from breedclf.training.callbacks.callback import Callback

if TYPE_CHECKING:
    from breedclf.training import Trainer

__all__ = ["SAGEMAKER_HOOK_CONFIG", "SmdebugHook", "find_hook_config", "smdebug_available"]

log = logging.getLogger("breedclf.debugger")

#: Where SageMaker writes the debug hook config of a job that has Debugger enabled.
SAGEMAKER_HOOK_CONFIG = Path("/opt/ml/input/config/debughookconfig.json")


def smdebug_available() -> bool:
    """Whether ``smdebug`` can be imported (``pip install 'breedclf[smdebug]'``)."""
    return importlib.util.find_spec("smdebug") is not None


def find_hook_config(explicit: str | Path | None = None) -> Path | None:
    """The hook config to use: ``explicit`` if given, else SageMaker's when it exists."""
    if explicit is not None:
        return Path(explicit)
    return SAGEMAKER_HOOK_CONFIG if SAGEMAKER_HOOK_CONFIG.is_file() else None


class SmdebugHook(Callback):
    """Creates ``smdebug.pytorch.Hook`` from a JSON config; registers it on model and loss.

    Args:
        config_path: A SageMaker debug hook config (``debughookconfig.json``).
    """

    order = 400

    def __init__(self, config_path: str | Path) -> None:
        self.config_path = Path(config_path)
        self.hook: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        """Create the hook and register it on the model and the training loss."""
        from smdebug import modes
        from smdebug.pytorch import Hook

        self.hook = Hook.create_from_json_file(str(self.config_path))
        self.hook.register_module(trainer.model)
        self.hook.register_loss(trainer.criterion)
        self.hook.set_mode(modes.TRAIN)
        log.info("registered the smdebug hook from %s", self.config_path)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Tell smdebug that training steps follow."""
        if self.hook is not None:
            from smdebug import modes

            self.hook.set_mode(modes.TRAIN)

    def on_validation_start(self, trainer: Trainer) -> None:
        """Tell smdebug that evaluation steps follow."""
        if self.hook is not None:
            from smdebug import modes

            self.hook.set_mode(modes.EVAL)

    def teardown(self, trainer: Trainer) -> None:
        """Flush and close smdebug's writers."""
        if self.hook is not None:
            self.hook.close()
