"""One documented default each: weights (pretrained "DEFAULT" in create_model and ModelConfig)
and dropout (the architecture's own, in create_model and ModelConfig)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
from pydantic import ValidationError

from breedclf.config import ModelConfig
from breedclf.errors import ConfigurationError
from breedclf.models import (
    MODELS,
    ImageClassifier,
    create_model,
    efficientnet_lite0,
    get_default_dropout,
    list_models,
    register_model,
)
from breedclf.preprocessing import PreprocessSpec

# The dropout each architecture is published with: torchvision's for its models, the
# TensorFlow reference's 0.2 for Lite0. ResNets have none.
ARCHITECTURE_DROPOUT = {
    **{f"resnet{d}": 0.0 for d in (18, 34, 50, 101, 152)},
    "efficientnet_b0": 0.2,
    "efficientnet_b1": 0.2,
    "efficientnet_b2": 0.3,
    "efficientnet_b3": 0.3,
    "efficientnet_b4": 0.4,
    "efficientnet_lite0": 0.2,
}


def test_create_model_and_model_config_share_the_weights_default() -> None:
    default = inspect.signature(create_model).parameters["weights"].default
    assert default == ModelConfig().weights == "DEFAULT"


def test_create_model_loads_the_default_pretrained_weights_unless_told_otherwise() -> None:
    generator = torch.Generator().manual_seed(0)
    model = create_model("efficientnet_lite0", num_classes=3, generator=generator)
    pretrained = efficientnet_lite0(weights="DEFAULT")
    key = "stages.8.0.weight"
    assert torch.equal(model.state_dict()[key], pretrained.state_dict()[key])
    random = create_model("efficientnet_lite0", num_classes=3, weights=None, generator=generator)
    assert not torch.equal(random.state_dict()[key], pretrained.state_dict()[key])


def test_every_model_documents_its_default_dropout() -> None:
    assert {name: get_default_dropout(name) for name in list_models()} == ARCHITECTURE_DROPOUT


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=n) for n in ARCHITECTURE_DROPOUT if n.startswith("efficientnet_b")]
)
def test_efficientnet_default_dropout_is_torchvisions(name: str) -> None:
    reference = getattr(tvm, name)(weights=None).classifier[0]
    assert isinstance(reference, torch.nn.Dropout)
    assert get_default_dropout(name) == pytest.approx(reference.p)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("efficientnet_b2", 0.3, id="b2"),
        pytest.param("efficientnet_lite0", 0.2, id="lite0"),
        pytest.param("resnet18", 0.0, id="resnet18"),
    ],
)
def test_unset_dropout_is_the_architectures_own(name: str, expected: float) -> None:
    model = create_model(name, num_classes=3, weights=None, dropout=ModelConfig().dropout)
    assert model.dropout.p == pytest.approx(expected)


def test_an_explicit_dropout_overrides_the_architectures() -> None:
    model = create_model("efficientnet_b2", num_classes=3, weights=None, dropout=0.0)
    assert model.dropout.p == 0.0
    assert ModelConfig(dropout=0.5).dropout == 0.5
    with pytest.raises(ValidationError, match="dropout"):
        ModelConfig(dropout=1.0)


def _no_default_dropout(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float
) -> ImageClassifier:
    return ImageClassifier(
        arch="no_default",
        stages=[torch.nn.Conv2d(3, 4, 3)],
        num_features=4,
        num_classes=num_classes or 2,
        preprocess=PreprocessSpec(input_size=32, resize_size=36),
        dropout=dropout,
    )


def test_a_builder_without_a_dropout_default_is_a_clear_error() -> None:
    with MODELS.scoped():
        register_model("no_default")(_no_default_dropout)  # type: ignore[type-var]
        with pytest.raises(ConfigurationError, match=r"'no_default' declares no default dropout"):
            create_model("no_default", num_classes=2, weights=None)
        assert create_model("no_default", num_classes=2, weights=None, dropout=0.1).dropout.p == 0.1
