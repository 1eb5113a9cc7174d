"""Freeze policies and optimizer parameter groups of built models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from breedclf.config import FreezeConfig
from breedclf.errors import ConfigurationError
from breedclf.models import ImageClassifier, create_model


def _trainable_stages(model: ImageClassifier) -> list[bool]:
    return [any(p.requires_grad for p in stage.parameters()) for stage in model.stages]


def _batchnorms(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_backbone_policy_trains_only_the_head() -> None:
    model = create_model(
        "resnet18", num_classes=3, weights=None, freeze=FreezeConfig(policy="backbone")
    )
    model.train()
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]
    assert all(not bn.training for bn in _batchnorms(model.stages))
    assert model.head.training


def test_frozen_batchnorm_statistics_do_not_move_in_training() -> None:
    model = create_model(
        "efficientnet_lite0", num_classes=3, weights=None, freeze=FreezeConfig(policy="backbone")
    ).train()
    before = model.state_dict()["stages.1.0.bn1.running_mean"].clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(model.state_dict()["stages.1.0.bn1.running_mean"], before)


@pytest.mark.parametrize(
    ("name", "trainable_stages", "expected"),
    [
        pytest.param("resnet50", 2, [False, False, False, True, True], id="resnet50-last2"),
        pytest.param("efficientnet_lite0", 1, [False] * 8 + [True], id="lite0-last1"),
        pytest.param("efficientnet_b0", 0, [False] * 9, id="b0-last0"),
    ],
)
def test_last_n_policy_trains_the_last_stages(
    name: str, trainable_stages: int, expected: list[bool]
) -> None:
    freeze = FreezeConfig(policy="last_n", trainable_stages=trainable_stages)
    model = create_model(name, num_classes=3, weights=None, freeze=freeze).train()
    assert _trainable_stages(model) == expected
    assert model.head.weight.requires_grad
    for stage, trains in zip(model.stages, expected, strict=True):
        assert all(bn.training == trains for bn in _batchnorms(stage))


def test_last_n_policy_with_too_many_stages_is_a_clear_error() -> None:
    with pytest.raises(
        ConfigurationError, match=r"trainable_stages=6 but resnet18 has only 5 stages"
    ):
        create_model(
            "resnet18",
            num_classes=3,
            weights=None,
            freeze=FreezeConfig(policy="last_n", trainable_stages=6),
        )


def test_parameter_groups_give_head_and_backbone_learning_rates() -> None:
    model = create_model("resnet18", num_classes=3, weights=None)
    groups = {
        g["name"]: g for g in model.parameter_groups(lr=1e-2, backbone_lr=1e-4, weight_decay=0.05)
    }
    assert set(groups) == {"head", "head_no_decay", "backbone", "backbone_no_decay"}
    assert groups["head"]["lr"] == 1e-2
    assert groups["backbone"]["lr"] == 1e-4
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0
    assert groups["head"]["params"] == [model.head.weight]
    grouped = sum(len(g["params"]) for g in groups.values())
    assert grouped == len(list(model.parameters()))
    torch.optim.AdamW(list(groups.values()))


def test_parameter_groups_skip_frozen_parameters() -> None:
    model = create_model(
        "efficientnet_b0", num_classes=3, weights=None, freeze=FreezeConfig(policy="backbone")
    )
    groups = model.parameter_groups(lr=1e-3, backbone_lr=None, weight_decay=0.0)
    assert [g["name"] for g in groups] == ["head", "head_no_decay"]
