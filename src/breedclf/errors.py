"""Exception hierarchy of breedclf.

Every error the library raises on purpose derives from :class:`BreedclfError`, so callers can
catch the library's errors without catching bugs. Subclasses also derive from the builtin
exception a Python user would expect (``ValueError`` for bad values, ``KeyError`` never: lookups
of unknown names raise :class:`UnknownNameError`, a ``ValueError``).
"""

from __future__ import annotations

__all__ = [
    "BreedclfError",
    "CheckpointError",
    "ConfigurationError",
    "DatasetError",
    "ImageDecodeError",
    "MissingDependencyError",
    "ModelError",
    "RunExistsError",
    "UnknownNameError",
]


class BreedclfError(Exception):
    """Base class of every error raised by breedclf."""


class ConfigurationError(BreedclfError, ValueError):
    """A configuration value or key is invalid; the message names the field and the fix."""


class UnknownNameError(ConfigurationError):
    """A registry lookup used a name that is not registered; the message lists close matches."""


class DatasetError(BreedclfError, ValueError):
    """A dataset folder is missing, empty or laid out in a way breedclf cannot read."""


class ImageDecodeError(BreedclfError, ValueError):
    """Bytes or a file could not be decoded into an RGB image."""


class ModelError(BreedclfError, ValueError):
    """A model cannot be built or its weights do not fit its architecture."""


class CheckpointError(BreedclfError, RuntimeError):
    """A training checkpoint or saved model is missing, corrupt or incompatible."""


class RunExistsError(BreedclfError, FileExistsError):
    """The output directory already holds a run; resume it, overwrite it on purpose, or move on."""


class MissingDependencyError(BreedclfError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the optional package {package!r}, which is not installed. "
            f"Install it with: pip install 'breedclf[{extra}]'"
        )
        self.package = package
        self.extra = extra
