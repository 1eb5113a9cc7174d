"""Builds the Debugger a ``debugger:`` config section describes."""

from __future__ import annotations

from breedclf.config import DebuggerConfig
from breedclf.debugger._callback import Debugger
from breedclf.debugger._rule import create_rule

__all__ = ["create_debugger"]


def create_debugger(config: DebuggerConfig) -> Debugger:
    """The :class:`Debugger` of a ``debugger:`` section.

    Raises:
        UnknownNameError: A rule name is not registered (close matches are listed).
        ConfigurationError: A rule parameter is unknown or invalid.
    """
    rules = []
    for spec in config.rules:
        rule = create_rule(spec.name, spec.params)
        if spec.action is not None:
            rule.on_fire(spec.action)
        rules.append(rule)
    return Debugger(
        rules,
        default_action=config.default_action,
        save_interval=config.save_interval,
        collection_intervals={str(k): v for k, v in config.collection_intervals.items()},
        save_tensors=config.save_tensors,
        tensor_steps=config.tensor_steps,
    )
