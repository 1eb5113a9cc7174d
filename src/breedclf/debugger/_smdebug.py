"""Registers SageMaker's own smdebug hook when smdebug and a debug hook config are present.

AWS's Debugger rules (for users who still have it) read tensors that smdebug's hook writes.
breedclf's rules do not need it. The hook only lives on the training model: saved models hold
plain weights and never need smdebug to load or serve.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

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


def _hook_dicts(modules: list[nn.Module]) -> Iterator[dict[int, Any]]:
    """Every hook dict smdebug adds to: modules' forward (pre-)hooks, parameters' grad hooks."""
    for module in modules:
        for sub in module.modules():
            yield sub._forward_pre_hooks
            yield sub._forward_hooks
        for param in module.parameters():
            if param._backward_hooks is not None:
                yield param._backward_hooks


class SmdebugHook(Callback):
    """Creates ``smdebug.pytorch.Hook`` from a JSON config; registers it on model and loss.

    The hook lives for the ``fit`` only: its module and gradient hooks are removed at the end,
    so evaluating, saving or serving the model afterwards neither writes smdebug tensors nor
    needs smdebug.

    Args:
        config_path: A SageMaker debug hook config (``debughookconfig.json``).
    """

    order = 400
    rank_zero_only = True

    def __init__(self, config_path: str | Path) -> None:
        self.config_path = Path(config_path)
        self.hook: Any = None
        self._added: list[tuple[dict[int, Any], list[int]]] = []
        self._named: list[nn.Module] = []

    def on_fit_start(self, trainer: Trainer) -> None:
        """Create the hook and register it on the model and the training loss."""
        from smdebug import modes
        from smdebug.pytorch import Hook

        watched = [trainer.model, trainer.criterion]
        # smdebug keeps no handles of the hooks it adds: note what is there before.
        before = {id(d): set(d) for d in _hook_dicts(watched)}
        self.hook = Hook.create_from_json_file(str(self.config_path))
        self.hook.register_module(trainer.model)
        self.hook.register_loss(trainer.criterion)
        self.hook.set_mode(modes.TRAIN)
        self._added = [
            (d, [k for k in d if k not in before.get(id(d), set())]) for d in _hook_dicts(watched)
        ]
        self._named = [m for w in watched for m in w.modules() if hasattr(m, "_module_name")]
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
        """Flush and close smdebug's writers; take its hooks off the model and the loss."""
        if self.hook is not None:
            self.hook.close()
            self.hook = None
        for hooks, keys in self._added:
            for key in keys:
                hooks.pop(key, None)
        for module in self._named:
            del module._module_name
        self._added, self._named = [], []
