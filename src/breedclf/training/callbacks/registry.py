"""The callback registry: callbacks a YAML experiment can name in its ``callbacks:`` list."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import TypeVar

from breedclf._registry import Registry
from breedclf.config import CallbackSpec
from breedclf.errors import ConfigurationError
from breedclf.training.callbacks.callback import Callback
from breedclf.training.callbacks.early_stopping import EarlyStopping

__all__ = ["CALLBACKS", "create_callback", "list_callbacks", "register_callback"]

F = TypeVar("F", bound=Callable[..., Callback])

CALLBACKS: Registry[Callable[..., Callback]] = Registry("callback")


def register_callback(name: str) -> Callable[[F], F]:
    """Register a callback class (or factory) under ``name`` for the ``callbacks:`` config list.

    Its keyword arguments become the entry's ``params``.

    Example:
        >>> from breedclf.training import Callback, register_callback
        >>> @register_callback("print_epochs")                       # doctest: +SKIP
        ... class PrintEpochs(Callback):
        ...     def __init__(self, *, prefix: str = "epoch") -> None:
        ...         self.prefix = prefix
        ...     def on_epoch_end(self, trainer, result):
        ...         print(self.prefix, result.epoch, result.valid.get("acc"))

    then in YAML::

        callbacks:
          - name: print_epochs
            params: {prefix: "done:"}
    """

    def decorator(factory: F) -> F:
        CALLBACKS.add(name, factory)
        return factory

    return decorator


def list_callbacks(pattern: str = "*") -> list[str]:
    """Registered callback names matching a wildcard pattern."""
    return CALLBACKS.list(pattern)


def create_callback(spec: CallbackSpec) -> Callback:
    """Build the callback a :class:`~breedclf.config.CallbackSpec` names.

    Raises:
        UnknownNameError: The name is not registered (close matches are listed).
        ConfigurationError: A parameter is unknown (the closest valid one is named), missing,
            or rejected by the callback.
    """
    factory = CALLBACKS.get(spec.name)
    signature = inspect.signature(factory)
    accepted = {
        name: param
        for name, param in signature.parameters.items()
        if param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD)
    }
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    for key in spec.params:
        if key not in accepted and not takes_any:
            close = difflib.get_close_matches(key, list(accepted), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigurationError(
                f"callback {spec.name!r} has no parameter {key!r}; {hint}"
                f"valid parameters: {', '.join(accepted) or 'none'}"
            )
    missing = [
        name
        for name, param in accepted.items()
        if param.default is param.empty and name not in spec.params
    ]
    if missing:
        raise ConfigurationError(
            f"callback {spec.name!r} needs the parameter(s) {', '.join(missing)} in its params"
        )
    try:
        return factory(**spec.params)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"callback {spec.name!r} rejected its params: {exc}") from None


CALLBACKS.add("early_stopping", EarlyStopping)
