"""list_weights: every pretrained variant with its preprocessing, metrics, size and whereabouts,
read offline from torchvision's weights enums and the Lite0 package."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.hub
from typer.testing import CliRunner

from breedclf.cli import app
from breedclf.errors import UnknownNameError
from breedclf.models import (
    MODELS,
    ImageClassifier,
    WeightsInfo,
    create_model,
    get_model_builder,
    list_models,
    list_weights,
    register_model,
)
from breedclf.preprocessing import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec


@pytest.fixture(autouse=True)
def no_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty torch hub cache, and any download attempt fails the test."""

    def download(url: str, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"list_weights must not download anything, but fetched {url}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", download)


def _by_name(model: str) -> dict[str, WeightsInfo]:
    return {info.name: info for info in list_weights(model)}


def test_resnet50_lists_both_variants_with_torchvisions_meta() -> None:
    v1, v2 = list_weights("resnet50")
    assert (v1.name, v1.aliases, v1.is_default) == ("IMAGENET1K_V1", (), False)
    assert (v2.name, v2.aliases, v2.is_default) == ("IMAGENET1K_V2", ("DEFAULT",), True)
    assert (v2.imagenet_top1, v2.imagenet_top5) == (80.858, 95.434)
    assert (v1.imagenet_top1, v1.imagenet_top5) == (76.13, 92.862)
    assert v2.num_params == 25_557_032
    assert v2.num_classes == 1000
    assert v2.file_size_mib == pytest.approx(97.79)
    assert v2.url == "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
    # V2 was trained with a smaller resize than V1: the spec travels with each variant.
    assert v2.preprocess == PreprocessSpec(
        input_size=224,
        resize_size=232,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bilinear",
    )
    assert v1.preprocess.resize_size == 256


def test_torchvision_weights_are_offline_once_in_the_torch_hub_cache() -> None:
    info = _by_name("resnet18")["IMAGENET1K_V1"]
    assert not info.available_offline
    assert info.local_path == Path(torch.hub.get_dir()) / "checkpoints" / "resnet18-f37072fd.pth"
    info.local_path.parent.mkdir(parents=True)
    model = create_model("resnet18", num_classes=1000, weights=None)
    torch.save(model.state_dict(), info.local_path)
    assert _by_name("resnet18")["IMAGENET1K_V1"].available_offline


def test_lite0_weights_ship_with_the_package() -> None:
    (info,) = list_weights("efficientnet_lite0")
    assert (info.name, info.aliases) == ("IMAGENET1K", ("DEFAULT",))
    assert info.available_offline
    assert info.url is None
    assert info.local_path.name == "efficientnet-lite0-57934424.pth"
    assert info.file_size_mib == pytest.approx(info.local_path.stat().st_size / 2**20)
    # The package publishes no ImageNet accuracy for its conversion; none is made up.
    assert (info.imagenet_top1, info.imagenet_top5) == (None, None)
    assert info.preprocess.interpolation == "bilinear"
    assert info.preprocess.mean == pytest.approx((127 / 255,) * 3)


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in list_models()])
def test_every_model_has_exactly_one_default_variant(name: str) -> None:
    infos = list_weights(name)
    assert [info.arch for info in infos] == [name] * len(infos)
    assert sum(info.is_default for info in infos) == 1
    names = [info.name for info in infos]
    assert len(set(names)) == len(names)
    assert all(info.num_classes == 1000 for info in infos)


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=n) for n in ("resnet18", "efficientnet_b0", "efficientnet_lite0")]
)
def test_parameter_counts_match_the_built_architecture(name: str) -> None:
    default = next(info for info in list_weights(name) if info.is_default)
    model = get_model_builder(name)(weights=None, num_classes=default.num_classes)
    assert default.num_params == sum(p.numel() for p in model.parameters())
    # Random init uses the DEFAULT variant's preprocessing.
    assert model.preprocess == default.preprocess


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in list_models()])
def test_builder_docstrings_list_exactly_the_variants(name: str) -> None:
    doc = get_model_builder(name).__doc__ or ""
    documented = set(re.findall(r"``(IMAGENET1K\w*)``", doc))
    assert documented == {info.name for info in list_weights(name)}
    (default,) = [info.name for info in list_weights(name) if info.is_default]
    assert f"``{default}`` (``DEFAULT``)" in doc


def test_unknown_model_suggests_a_close_match() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown model 'resnet5'.*'resnet50'"):
        list_weights("resnet5")


def _tiny_net(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.0
) -> ImageClassifier:
    return ImageClassifier(
        arch="tiny_net",
        stages=[torch.nn.Conv2d(3, 4, 3)],
        num_features=4,
        num_classes=num_classes or 2,
        preprocess=PreprocessSpec(input_size=32, resize_size=36),
        dropout=dropout,
    )


def test_a_user_model_without_pretrained_weights_lists_none() -> None:
    with MODELS.scoped():
        register_model("tiny_net")(_tiny_net)
        assert list_weights("tiny_net") == []


def test_models_command_prints_weights() -> None:
    result = CliRunner().invoke(app, ["models", "resnet50", "--weights"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "resnet50 (default dropout 0.0)"
    (v2,) = [line for line in lines if "IMAGENET1K_V2" in line]
    assert "DEFAULT" in v2
    assert "top-1 80.86%" in result.output
    assert "resize 232 → crop 224 bilinear" in result.output
    assert "resnet50-11ad3fa6.pth" in result.output
    assert "download on first use" in result.output


def test_models_command_json_is_list_weights() -> None:
    result = CliRunner().invoke(app, ["models", "efficientnet_lite0", "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.output)
    assert WeightsInfo.model_validate(entry) == list_weights("efficientnet_lite0")[0]
