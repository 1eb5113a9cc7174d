"""BatchNorm folding for serving: same outputs, fewer layers, and only where it is safe."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from breedclf.models import create_model
from breedclf.serving._fold import fold_batchnorm


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "resnet18"])
def test_folded_model_gives_the_same_outputs_without_batchnorm(arch: str) -> None:
    torch.manual_seed(0)
    model = create_model(arch, num_classes=7, weights=None).eval()
    # Non-trivial running statistics, as after training.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.running_mean is not None
            assert m.running_var is not None
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    folded = copy.deepcopy(model)
    count = fold_batchnorm(folded)
    assert count == _batchnorms(model) > 0
    assert _batchnorms(folded) == 0
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(folded(x), model(x), atol=1e-4, rtol=1e-4)
        channels_last = folded.to(memory_format=torch.channels_last)
        y = channels_last(x.contiguous(memory_format=torch.channels_last))
        assert torch.allclose(y, model(x), atol=1e-4, rtol=1e-4)


class _SharedOutput(nn.Module):
    """A convolution whose output feeds both a BatchNorm and a residual sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        out: torch.Tensor = self.bn(y) + y
        return out


class _ValueDependent(nn.Module):
    """Control flow on tensor values: cannot be traced symbolically."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            x = -x
        out: torch.Tensor = self.bn(self.conv(x))
        return out


@pytest.mark.parametrize(
    ("model", "train"),
    [
        pytest.param(_SharedOutput(), False, id="conv-output-used-twice"),
        pytest.param(nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)), True, id="training"),
        pytest.param(_ValueDependent(), False, id="untraceable"),
    ],
)
def test_unsafe_pairs_are_left_alone(model: nn.Module, train: bool) -> None:
    model.train(train)
    x = torch.randn(1, 3, 8, 8)
    before = copy.deepcopy(model)
    assert fold_batchnorm(model) == 0
    assert _batchnorms(model) == 1
    model.eval()
    before.eval()
    with torch.inference_mode():
        assert torch.equal(model(x), before(x))
