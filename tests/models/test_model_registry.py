"""The model registry and create_model: every builder works, names are checked, seeds reproduce."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from breedclf.errors import ConfigurationError, UnknownNameError
from breedclf.models import (
    MODELS,
    ImageClassifier,
    create_model,
    get_model_builder,
    list_models,
    register_model,
    resnet18,
)
from breedclf.preprocessing import PreprocessSpec

EXPECTED_STAGES = {"resnet": 5, "efficientnet": 9}


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in list_models()])
def test_every_model_builds_and_runs_a_forward_pass(name: str) -> None:
    generator = torch.Generator().manual_seed(0)
    model = create_model(name, num_classes=7, weights=None, generator=generator).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64))
    assert logits.shape == (1, 7)
    assert torch.isfinite(logits).all()
    assert model.arch == name
    assert len(model.stages) == EXPECTED_STAGES[name.split("_")[0].rstrip("0123456789")]
    assert isinstance(model.preprocess, PreprocessSpec)


def test_all_expected_models_are_registered() -> None:
    assert set(list_models()) >= {
        *(f"resnet{d}" for d in (18, 34, 50, 101, 152)),
        *(f"efficientnet_b{i}" for i in range(5)),
        "efficientnet_lite0",
    }


def test_list_models_filters_with_wildcards() -> None:
    assert list_models("resnet*") == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    assert list_models("*lite*") == ["efficientnet_lite0"]
    assert list_models("vgg*") == []


def test_unknown_model_name_suggests_a_close_match() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown model 'resnet5'.*'resnet50'"):
        create_model("resnet5", num_classes=3)


def test_registering_an_existing_name_raises() -> None:
    with pytest.raises(ConfigurationError, match="'resnet18' is already registered"):
        register_model("resnet18")(get_model_builder("resnet34"))
    assert get_model_builder("resnet18") is resnet18


def _tiny_net(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.0
) -> ImageClassifier:
    stages = [nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU()), nn.Conv2d(4, 8, 3, 2, 1)]
    return ImageClassifier(
        arch="tiny_net",
        stages=stages,
        num_features=8,
        num_classes=num_classes or 1000,
        preprocess=PreprocessSpec(input_size=32, resize_size=36),
        dropout=dropout,
    )


def test_a_registered_user_builder_works_with_create_model() -> None:
    with MODELS.scoped():
        register_model("tiny_net")(_tiny_net)
        assert list_models("tiny*") == ["tiny_net"]
        model = create_model("tiny_net", num_classes=2, weights=None)
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 2)
        with pytest.raises(ConfigurationError, match="already registered"):
            register_model("tiny_net")(_tiny_net)


def test_scoped_registrations_are_removed_on_exit_so_reruns_can_register_again() -> None:
    before = list_models()
    for _ in range(2):  # a second run of the same registration must not be "already registered"
        with MODELS.scoped():
            register_model("tiny_net")(_tiny_net)
            assert "tiny_net" in MODELS
        assert "tiny_net" not in MODELS
    assert list_models() == before
    assert get_model_builder("resnet18") is resnet18


def test_scoped_registry_is_restored_after_an_error() -> None:
    def register_then_fail() -> None:
        with MODELS.scoped():
            register_model("tiny_net")(_tiny_net)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        register_then_fail()
    assert "tiny_net" not in MODELS


def test_same_generator_seed_gives_the_same_model() -> None:
    def build(seed: int) -> ImageClassifier:
        return create_model(
            "resnet18", num_classes=5, weights=None, generator=torch.Generator().manual_seed(seed)
        )

    a, b, c = build(1), build(1), build(2)
    for (key, ta), tb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(ta, tb), key
    assert not torch.equal(a.head.weight, c.head.weight)
    conv = "stages.1.0.conv1.weight"
    assert not torch.equal(a.state_dict()[conv], c.state_dict()[conv])


def test_create_model_with_a_generator_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    create_model(
        "efficientnet_b0",
        num_classes=3,
        weights=None,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(torch.rand(3), expected)


def test_pretrained_head_is_replaced_reproducibly() -> None:
    def build(seed: int) -> ImageClassifier:
        g = torch.Generator().manual_seed(seed)
        return create_model("efficientnet_lite0", num_classes=4, weights="DEFAULT", generator=g)

    a, b = build(0), build(0)
    assert a.head.weight.shape == (4, 1280)
    assert torch.equal(a.head.weight, b.head.weight)
    assert torch.equal(a.head.bias, b.head.bias)
    assert not torch.equal(a.head.weight, build(1).head.weight)


def test_pretrained_head_is_kept_when_the_class_count_matches() -> None:
    builder = get_model_builder("efficientnet_lite0")
    reference = builder(weights="DEFAULT")
    model = create_model("efficientnet_lite0", num_classes=1000, weights="DEFAULT")
    assert torch.equal(model.head.weight, reference.head.weight)


def test_dropout_reaches_the_model() -> None:
    model = create_model("resnet18", num_classes=3, weights=None, dropout=0.3)
    assert model.dropout.p == pytest.approx(0.3)
