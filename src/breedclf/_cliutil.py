"""Helpers shared by the CLI's command modules."""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["parse_overrides"]


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` options as ``{key: value}``, values read by ``config.parse_value``.

    Example:
        >>> parse_overrides(["optimizer.lr=0.0003", "model.weights=null"])
        {'optimizer.lr': 0.0003, 'model.weights': None}
    """
    from breedclf.config import parse_value

    updates: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--set takes KEY=VALUE, got {item!r}")
        updates[key.strip()] = parse_value(raw)
    return updates
