"""Lazy package exports (PEP 562): names import their module on first use.

Packages use it so that ``import breedclf`` and the CLI's command registration stay fast (no
torch, Optuna or plotting import until a name that needs one is used).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

from breedclf.errors import MissingDependencyError

__all__ = ["lazy_exports", "load_attribute"]


def lazy_exports(
    package: str,
    exports: Mapping[str, str],
    *,
    before: Callable[[], None] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose names load lazily.

    Args:
        package: The package's ``__name__``.
        exports: ``{name: module that defines it}``.
        before: Called before the first import of a name (a dependency check, or a module
            whose import registers things the names rely on).

    Example:
        >>> getattr_, dir_ = lazy_exports("json", {"dumps": "json"})
        >>> getattr_("dumps")('a')
        '"a"'
    """

    def get_attribute(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if before is not None:
            before()
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def list_names() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return get_attribute, list_names


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
