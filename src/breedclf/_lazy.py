"""Lazy package attributes whose modules need an optional extra."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from breedclf.errors import MissingDependencyError

__all__ = ["load_attribute"]


def load_attribute(
    package: str, homes: Mapping[str, str], name: str, *, extra: str, packages: frozenset[str]
) -> Any:
    """Import ``package.<homes[name]>`` and return its ``name`` (a module ``__getattr__``).

    An ImportError naming one of ``packages`` (the extra's top-level modules) becomes a
    :class:`MissingDependencyError` that says to install ``breedclf[extra]``; any other is a bug
    and propagates as it is.
    """
    home = homes.get(name)
    if home is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(f"{package}.{home}")
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in packages:
            raise
        raise MissingDependencyError(exc.name or extra, extra, f"{package}.{name}") from exc
    return getattr(module, name)
