"""Reductions of tensors, computed on the tensor's device (one host copy per saved step)."""

from __future__ import annotations

import re

import torch

from breedclf.errors import ConfigurationError

__all__ = ["PLAIN_REDUCTIONS", "check_reduction", "reduce_tensor"]

#: Reductions that take no parameters; each gives one number (``unit_active`` gives one per unit).
PLAIN_REDUCTIONS = (
    "mean",
    "mean_abs",
    "min",
    "max",
    "variance",
    "zero_fraction",
    "p5",
    "p95",
    "nan",
    "inf",
    "count",
    "unit_active",
)
# Parametrised reductions: ``unit_within(lo,hi)`` and ``channel_mean(c)``. The parameters are
# part of the name, so a trial says exactly what was measured.
_WITHIN = re.compile(r"unit_within\((?P<lo>[^,]+),(?P<hi>[^)]+)\)")
_CHANNEL = re.compile(r"channel_mean\((?P<c>\d+)\)")
# torch.quantile refuses inputs of more than 2**24 elements; larger tensors are strided.
_QUANTILE_LIMIT = 2**24


def check_reduction(name: str) -> None:
    """Raise :class:`ConfigurationError` unless ``name`` is a known reduction."""
    if name in PLAIN_REDUCTIONS or _WITHIN.fullmatch(name) or _CHANNEL.fullmatch(name):
        return
    raise ConfigurationError(
        f"unknown reduction {name!r}; valid: {', '.join(PLAIN_REDUCTIONS)}, "
        "unit_within(lo,hi), channel_mean(c)"
    )


def unit_within(lo: float, hi: float) -> str:
    """The name of the per-unit fraction of values within ``[lo, hi]``."""
    return f"unit_within({lo!r},{hi!r})"


def _per_unit(x: torch.Tensor) -> torch.Tensor:
    """``[units, rest]``: dim 1 holds the units (features or channels) of a batch."""
    if x.dim() < 2:
        return x.reshape(1, -1)
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def reduce_tensor(x: torch.Tensor, name: str) -> torch.Tensor:
    """The reduction ``name`` of ``x`` as a 1-D float tensor on ``x``'s device (no sync)."""
    x = x.detach()
    xf = x.float()
    value: torch.Tensor
    if name == "mean":
        value = xf.mean()
    elif name == "mean_abs":
        value = xf.abs().mean()
    elif name == "min":
        value = xf.amin() if xf.numel() else torch.zeros((), device=xf.device)
    elif name == "max":
        value = xf.amax() if xf.numel() else torch.zeros((), device=xf.device)
    elif name == "variance":
        value = xf.var(unbiased=False)
    elif name == "zero_fraction":
        value = (xf == 0).float().mean()
    elif name in ("p5", "p95"):
        flat = xf.reshape(-1)
        if flat.numel() > _QUANTILE_LIMIT:
            flat = flat[:: flat.numel() // _QUANTILE_LIMIT + 1]
        value = torch.nanquantile(flat, 0.05 if name == "p5" else 0.95)
    elif name == "nan":
        value = torch.isnan(xf).sum().float()
    elif name == "inf":
        value = torch.isinf(xf).sum().float()
    elif name == "count":
        value = torch.tensor(float(x.shape[0] if x.dim() else 1), device=x.device)
    elif name == "unit_active":
        value = (_per_unit(xf) > 0).float().mean(dim=1)
    elif match := _WITHIN.fullmatch(name):
        lo, hi = float(match["lo"]), float(match["hi"])
        units = _per_unit(xf)
        value = ((units >= lo) & (units <= hi)).float().mean(dim=1)
    elif match := _CHANNEL.fullmatch(name):
        channel = int(match["c"])
        dims = [d for d in range(xf.dim()) if d != channel]
        value = xf.mean(dim=dims) if dims else xf
    else:
        check_reduction(name)
        raise AssertionError(name)  # pragma: no cover - check_reduction raised
    return value.reshape(-1)
