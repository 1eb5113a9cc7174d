"""Loading weights: local files in torchvision and breedclf format, torchvision's weights API,
and errors that name the problem instead of a raw size-mismatch traceback."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torch.hub
import torchvision.models as tvm
from safetensors.torch import save_file

from breedclf.errors import ConfigurationError, ModelError
from breedclf.models import (
    create_model,
    efficientnet_b0,
    load_weights,
    read_state_dict,
    resnet18,
)


@pytest.fixture(scope="module")
def tv_resnet18() -> torch.nn.Module:
    torch.manual_seed(0)
    model: torch.nn.Module = tvm.resnet18(num_classes=10).eval()
    return model


@pytest.fixture
def image() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_torchvision_format_pth_gives_torchvision_outputs(
    tmp_path: Path, tv_resnet18: torch.nn.Module, image: torch.Tensor
) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(tv_resnet18.state_dict(), path)
    model = create_model("resnet18", num_classes=10, weights=path).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(image), tv_resnet18(image), rtol=0, atol=0)


def test_breedclf_format_safetensors_round_trip(
    tmp_path: Path, tv_resnet18: torch.nn.Module, image: torch.Tensor
) -> None:
    original = resnet18(num_classes=10)
    load_weights(original, tv_resnet18.state_dict())
    path = tmp_path / "model.safetensors"
    save_file(original.state_dict(), str(path))
    assert next(iter(read_state_dict(path))).startswith("stages.0.")

    restored = resnet18(weights=str(path), num_classes=10).eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(image), original.eval()(image), rtol=0, atol=0)
        torch.testing.assert_close(restored(image), tv_resnet18(image), rtol=0, atol=0)


def test_efficientnet_torchvision_format_loads(tmp_path: Path, image: torch.Tensor) -> None:
    torch.manual_seed(0)
    reference = tvm.efficientnet_b0(num_classes=3).eval()
    path = tmp_path / "b0.pt"
    torch.save(reference.state_dict(), path)
    model = efficientnet_b0(weights=path).eval()
    assert model.num_classes == 3
    with torch.no_grad():
        torch.testing.assert_close(model(image), reference(image), rtol=0, atol=0)


def test_wrapped_checkpoint_is_unwrapped(tmp_path: Path, tv_resnet18: torch.nn.Module) -> None:
    path = tmp_path / "ckpt.pt"
    state = {f"module.{k}": v for k, v in tv_resnet18.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3}, path)
    assert resnet18(weights=path).num_classes == 10


def test_mismatched_head_is_a_model_error_naming_shapes(tmp_path: Path) -> None:
    path = tmp_path / "dogs.safetensors"
    dogs = create_model("efficientnet_lite0", num_classes=133, weights=None)
    save_file(dogs.state_dict(), str(path))
    model = create_model("efficientnet_lite0", num_classes=10, weights=None)
    with pytest.raises(
        ModelError,
        match=r"head\.weight: checkpoint \[133, 1280\] vs model \[10, 1280\] — "
        r"the checkpoint was trained for 133 classes",
    ):
        load_weights(model, path)


def test_builder_refuses_a_class_count_that_differs_from_the_weights(tmp_path: Path) -> None:
    path = tmp_path / "dogs.safetensors"
    save_file(resnet18(num_classes=133).state_dict(), str(path))
    assert resnet18(weights=path).num_classes == 133
    with pytest.raises(ModelError, match=r"head\.bias: checkpoint \[133\] vs model \[5\]"):
        resnet18(weights=path, num_classes=5)
    # create_model replaces the head explicitly instead.
    assert create_model("resnet18", num_classes=5, weights=path).num_classes == 5


def test_missing_and_unexpected_keys_are_named() -> None:
    state = resnet18().state_dict()
    del state["stages.4.1.bn2.running_var"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ModelError) as info:
        load_weights(resnet18(), state)
    message = str(info.value)
    assert "missing from the checkpoint (1): stages.4.1.bn2.running_var" in message
    assert "not in the model (1): extra.weight" in message


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "b0.safetensors"
    save_file(efficientnet_b0().state_dict(), str(path))
    with pytest.raises(ModelError, match=r"(?s)do not fit resnet18 .*\.\.\. and \d+ more"):
        create_model("resnet18", num_classes=2, weights=path)


def test_unknown_variant_lists_the_valid_ones() -> None:
    with pytest.raises(
        ConfigurationError, match=r"unknown weights 'IMAGENET1K_V3' for resnet50.*IMAGENET1K_V2"
    ):
        create_model("resnet50", num_classes=2, weights="IMAGENET1K_V3")


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="weights file not found"):
        create_model("resnet18", num_classes=2, weights=tmp_path / "nope.pth")


def test_corrupt_file_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match=r"cannot read weights from .*broken\.safetensors"):
        read_state_dict(path)


def test_file_without_a_state_dict_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ModelError, match="does not contain a state dict"):
        read_state_dict(path)


def test_pickled_module_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "whole_model.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(
        ModelError, match=r"pickled Python objects.*torch\.save\(model\.state_dict\(\)"
    ):
        read_state_dict(path)


def test_default_weights_come_from_torchvision_cache(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tv_resnet18: torch.nn.Module,
    image: torch.Tensor,
) -> None:
    # torchvision's weights API reads $TORCH_HOME/hub/checkpoints/<file> before downloading.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    entry = tvm.ResNet18_Weights.DEFAULT
    cached = tmp_path / "hub" / "checkpoints" / Path(entry.url).name
    cached.parent.mkdir(parents=True)
    imagenet_like = tvm.resnet18().eval()
    torch.save(imagenet_like.state_dict(), cached)

    model = create_model("resnet18", num_classes=1000, weights="DEFAULT").eval()
    assert model.preprocess.resize_size == entry.transforms().resize_size[0]
    with torch.no_grad():
        torch.testing.assert_close(model(image), imagenet_like(image), rtol=0, atol=0)


def test_download_failure_suggests_a_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(url: str, dst: str, *args: object, **kwargs: object) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(
        ModelError,
        match=r"could not fetch the pretrained weights ResNet50_Weights\.IMAGENET1K_V2 .*"
        r"pass its local path instead: weights='/path/to/resnet50-11ad3fa6\.pth'",
    ):
        create_model("resnet50", num_classes=2, weights="DEFAULT")
