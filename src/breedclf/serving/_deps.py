"""What the ``serve`` extra installs."""

from __future__ import annotations

__all__ = ["SERVER_PACKAGES"]

# Top-level modules of the ``serve`` extra and of what they import; an ImportError naming one of
# them means the extra is missing, any other is a bug to report as it is.
SERVER_PACKAGES = frozenset({"starlette", "uvicorn", "anyio", "h11", "click", "sniffio"})
