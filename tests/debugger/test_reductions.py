"""The fused reductions of a collection equal the one-by-one reductions, NaN and inf included."""

from __future__ import annotations

import math

import pytest
import torch

from breedclf.debugger._reductions import FUSED_REDUCTIONS, reduce_many, reduce_tensor


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return all(
        (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-12)
        for x, y in zip(a.tolist(), b.tolist(), strict=True)
    )


def _tensors() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    with_nan = torch.randn(50, generator=gen)
    with_nan[[3, 7]] = float("nan")
    with_inf = torch.randn(4, 5, generator=gen)
    with_inf[0, 0], with_inf[1, 1] = float("inf"), float("-inf")
    both = torch.randn(30, generator=gen)
    both[0], both[1], both[2] = float("nan"), float("inf"), float("nan")
    return [
        torch.randn(8, 3, 3, 3, generator=gen) * 1e-9,  # a tiny (vanishing) gradient
        torch.zeros(16),  # an all-zero one
        with_nan,
        torch.randn(10, generator=gen, dtype=torch.float64),  # another dtype: one by one
        with_inf,
        torch.empty(0),  # an empty tensor
        both,
        torch.randn(2, 2, generator=gen).half(),
    ]


@pytest.mark.parametrize(
    "reductions",
    [
        set(FUSED_REDUCTIONS),
        {"mean_abs"},
        {"nan", "inf"},
        {"mean_abs", "variance", "max"},
        {"p5", "p95", "nan"},
    ],
)
def test_fused_reductions_equal_one_by_one(reductions: set[str]) -> None:
    tensors = _tensors()
    fused = reduce_many(tensors, reductions).per_tensor()
    for tensor, values in zip(tensors, fused, strict=True):
        assert values.keys() == reductions
        for name in reductions:
            assert _same(values[name], reduce_tensor(tensor, name)), (name, tensor)


def test_counts_are_exact_where_a_tensor_is_not_finite() -> None:
    tensors = _tensors()
    fused = reduce_many(tensors, {"nan", "inf", "mean_abs"}).per_tensor()
    assert [v["nan"].item() for v in fused] == [0, 0, 2, 0, 0, 0, 2, 0]
    assert [v["inf"].item() for v in fused] == [0, 0, 0, 0, 2, 0, 1, 0]
    assert math.isnan(fused[2]["mean_abs"].item()) and math.isinf(fused[4]["mean_abs"].item())
