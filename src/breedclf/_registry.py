"""A typed name → factory registry shared by models, datasets and (later) rules."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from breedclf.errors import ConfigurationError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (builders or classes) of one kind.

    A duplicate name raises, an unknown name raises an error that lists close matches, and
    :meth:`list` filters names with shell-style wildcards (``"resnet*"``). Registrations made
    inside :meth:`scoped` last only until the block exits (tests, notebooks).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Return a decorator that registers its target under ``name`` (default: ``__name__``)."""

        def decorator(obj: T) -> T:
            key = name if name is not None else getattr(obj, "__name__", None)
            if not isinstance(key, str) or not key:
                raise ConfigurationError(f"cannot register {obj!r} as a {self.kind}: no name given")
            self.add(key, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``; raises if the name is taken."""
        if name in self._entries:
            raise ConfigurationError(
                f"a {self.kind} named {name!r} is already registered "
                f"({self._entries[name]!r}); choose another name"
            )
        self._entries[name] = obj

    @contextmanager
    def scoped(self) -> Iterator[Registry[T]]:
        """Undo every registration made inside the ``with`` block when it exits.

        The entries are restored exactly as they were on entry, also when the block raises,
        so a test (or a notebook cell run twice) can register the same name again.

        Example:
            >>> registry = Registry[int]("number")
            >>> with registry.scoped():
            ...     registry.add("one", 1)
            ...     registry.list()
            ['one']
            >>> registry.list()
            []
        """
        saved = dict(self._entries)
        try:
            yield self
        finally:
            self._entries.clear()
            self._entries.update(saved)

    def get(self, name: str) -> T:
        """Return the entry for ``name``, or raise :class:`UnknownNameError` with suggestions."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """The error text for an unknown ``name``: close matches, then every valid choice."""
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return (
            f"unknown {self.kind} {name!r}.{hint} "
            f"Registered {self.kind}s: {', '.join(sorted(self._entries))}"
        )

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names matching the wildcard ``pattern``."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
