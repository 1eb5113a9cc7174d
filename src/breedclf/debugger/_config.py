"""Builds the Debugger a ``debugger:`` config section describes."""

from __future__ import annotations

import logging

from breedclf.config import DebuggerConfig
from breedclf.debugger._callback import Debugger
from breedclf.debugger._rule import create_rule

__all__ = ["create_debugger"]

log = logging.getLogger("breedclf.debugger")

#: Default rules that diagnose a random initialisation: left out of the default set when the
#: model starts from pretrained weights (their layers' activation scales were learned, and
#: differ by more than 10x across an ImageNet backbone without anything being wrong).
INITIALIZATION_RULES = ("poor_weight_initialization",)


def create_debugger(config: DebuggerConfig, *, pretrained: bool = False) -> Debugger:
    """The :class:`Debugger` of a ``debugger:`` section.

    Args:
        config: The section.
        pretrained: The model starts from pretrained weights: the *default* rule set (a section
            that lists no ``rules``) leaves out :data:`INITIALIZATION_RULES`. Rules listed
            explicitly always run.

    Raises:
        UnknownNameError: A rule name is not registered (close matches are listed).
        ConfigurationError: A rule parameter is unknown or invalid.
    """
    specs = config.rules
    if pretrained and "rules" not in config.model_fields_set:
        specs = [spec for spec in specs if spec.name not in INITIALIZATION_RULES]
        log.info(
            "debugger: %s left out of the default rules (the model starts from pretrained "
            "weights); list it under debugger.rules to run it",
            ", ".join(INITIALIZATION_RULES),
        )
    rules = []
    for spec in specs:
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
