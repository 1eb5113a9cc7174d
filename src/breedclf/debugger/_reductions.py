"""Reductions of tensors, computed on the tensor's device (one host copy per saved step)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from breedclf.errors import ConfigurationError

__all__ = [
    "FUSED_REDUCTIONS",
    "PLAIN_REDUCTIONS",
    "Reduced",
    "check_reduction",
    "reduce_many",
    "reduce_tensor",
]

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
        nan = torch.full((), float("nan"), device=xf.device)
        value = xf.var(unbiased=False) if xf.numel() else nan
    elif name == "zero_fraction":
        value = (xf == 0).float().mean()
    elif name in ("p5", "p95"):
        value = _quantiles(xf, [0.05 if name == "p5" else 0.95])
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


#: Reductions :func:`reduce_many` computes for a whole list of tensors at once.
FUSED_REDUCTIONS = frozenset({"mean_abs", "nan", "inf"})


@dataclass
class Reduced:
    """What :func:`reduce_many` gives.

    Attributes:
        index: The tensors (positions in the list) reduced together.
        vectors: For each fused reduction, one value per tensor of ``index``, in that order.
        single: Per tensor of the list, its reductions computed one by one: the reductions
            that are not fused, and every reduction of a tensor outside ``index``.
    """

    index: list[int]
    vectors: dict[str, torch.Tensor]
    single: list[dict[str, torch.Tensor]]

    def per_tensor(self) -> list[dict[str, torch.Tensor]]:
        """Every tensor's reductions, as :func:`reduce_tensor` would give them."""
        out = [dict(values) for values in self.single]
        for name, vector in self.vectors.items():
            for j, i in enumerate(self.index):
                out[i][name] = vector[j].reshape(-1)
        return out


def reduce_many(tensors: list[torch.Tensor], reductions: set[str]) -> Reduced:
    """``reductions`` of each tensor, as :func:`reduce_tensor` gives them, computed together.

    ``mean_abs``, ``nan`` and ``inf`` of a list of float32 tensors (a model's gradients or
    weights: ~150 tensors for EfficientNet-Lite0) take one fused pass: the L1 norm of every
    tensor (``torch._foreach_norm``, the kernel ``clip_grad_norm_`` uses), which is finite
    exactly when the tensor holds no NaN or inf. Only the tensors whose norm is not finite have
    their NaN and inf counted one by one. Knowing which costs one device sync (at saved steps
    only). Other reductions, and tensors of other dtypes or empty, are reduced one by one with
    :func:`reduce_tensor`.
    """
    fused = reductions & FUSED_REDUCTIONS
    index = [i for i, t in enumerate(tensors) if t.dtype == torch.float32 and t.numel()]
    if not fused or len(index) < 2:  # one tensor: nothing to fuse, and no sync needed
        index = []
    vectors: dict[str, torch.Tensor] = {}
    if index:
        group = [tensors[i].detach() for i in index]
        l1 = torch.stack(torch._foreach_norm(group, 1))
        if "mean_abs" in fused:
            numel = torch.tensor([t.numel() for t in group], dtype=l1.dtype, device=l1.device)
            vectors["mean_abs"] = l1 / numel
        counted = sorted(fused & {"nan", "inf"})
        if counted:
            bad = torch.nonzero(~torch.isfinite(l1)).reshape(-1).tolist()  # the sync
            for name in counted:
                counts = torch.zeros(len(group), device=l1.device)
                for j in bad:
                    counts[j] = reduce_tensor(group[j], name)[0]
                vectors[name] = counts
    inside = set(index)
    single: list[dict[str, torch.Tensor]] = []
    for i, tensor in enumerate(tensors):
        names = reductions - fused if i in inside else reductions
        values: dict[str, torch.Tensor] = {}
        if {"p5", "p95"} <= names:  # both from one sort
            both = _quantiles(tensor.detach().float(), [0.05, 0.95])
            values["p5"], values["p95"] = both[:1], both[1:]
        for name in sorted(names - values.keys()):
            values[name] = reduce_tensor(tensor, name)
        single.append(values)
    return Reduced(index, vectors, single)


def _quantiles(x: torch.Tensor, qs: list[float]) -> torch.Tensor:
    """The ``qs`` quantiles of ``x``'s values, NaN ignored (NaN for an empty tensor). Tensors
    over torch.quantile's limit are strided evenly."""
    flat = x.reshape(-1)
    if flat.numel() > _QUANTILE_LIMIT:
        flat = flat[:: flat.numel() // _QUANTILE_LIMIT + 1]
    if not flat.numel():
        return flat.new_full((len(qs),), float("nan"))
    return torch.nanquantile(flat, torch.tensor(qs, dtype=flat.dtype, device=flat.device))
