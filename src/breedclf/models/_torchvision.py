"""torchvision ResNets and EfficientNets, split into ImageClassifier stages.

ResNet: stem (conv1, bn1, relu, maxpool) + layer1..layer4 = 5 stages.
EfficientNet: features[0] (stem) .. features[8] (1×1 conv head) = 9 stages; stochastic depth
0.2 inside the blocks, as torchvision.

Every builder takes the same keyword-only arguments:

* ``weights``: ``None`` (random init), ``"DEFAULT"`` or a variant name of torchvision's
  ``*_Weights`` enum (``"IMAGENET1K_V2"``; downloaded on first use), or a path to a local
  ``.safetensors`` / ``.pt`` / ``.pth`` file in torchvision or breedclf key format. The
  variants, their preprocessing, metrics and files: ``list_weights(name)``; each builder's
  docstring lists them too, generated from the same enum.
* ``num_classes``: head outputs; ``None`` keeps the weights' head (1000 for ImageNet and for
  random init). A count that differs from pretrained weights raises :class:`ModelError`; use
  ``create_model``, which replaces the head explicitly.
* ``dropout``: dropout before the head (torchvision's value by default).

``model.preprocess`` holds the weights' resize, crop, statistics and interpolation (the
``DEFAULT`` variant's for random init and local files). An unknown variant raises
:class:`~breedclf.errors.ConfigurationError`; weights that cannot be fetched, read or loaded
raise :class:`~breedclf.errors.ModelError`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torchvision.models as tvm
from torch import nn

from breedclf.errors import ModelError
from breedclf.models._classifier import ImageClassifier
from breedclf.models._factory import register_model
from breedclf.models._weights import (
    WeightsVariant,
    build_classifier,
    document_variants,
    register_key_converter,
    register_weights,
)
from breedclf.preprocessing import PreprocessSpec

__all__ = [
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
]


def _preprocess_of(weights: Any) -> PreprocessSpec:
    # ``transforms`` only holds sizes and statistics; building it downloads nothing.
    preset = weights.transforms()
    return PreprocessSpec(
        input_size=preset.crop_size[0],
        resize_size=preset.resize_size[0],
        mean=tuple(preset.mean),
        std=tuple(preset.std),
        interpolation=preset.interpolation.value,
    )


def _fetcher(arch: str, weights: Any) -> Callable[[], Mapping[str, torch.Tensor]]:
    def fetch() -> Mapping[str, torch.Tensor]:
        try:
            state_dict: Mapping[str, torch.Tensor] = weights.get_state_dict(
                progress=True, check_hash=True, map_location="cpu", weights_only=True
            )
        except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
            filename = Path(str(weights.url)).name
            raise ModelError(
                f"could not fetch the pretrained weights {weights!r} for {arch} from "
                f"{weights.url} ({type(exc).__name__}: {exc}). On a machine without internet "
                f"access, download that file elsewhere and pass its local path instead: "
                f"weights='/path/to/{filename}'"
            ) from exc
        return state_dict

    return fetch


def _cache_path(weights: Any) -> Callable[[], Path]:
    # Where torchvision's get_state_dict looks before downloading; $TORCH_HOME is read per call.
    return lambda: Path(torch.hub.get_dir()) / "checkpoints" / Path(str(weights.url)).name


def _variant(arch: str, weights: Any) -> WeightsVariant:
    meta = weights.meta
    imagenet = meta.get("_metrics", {}).get("ImageNet-1K", {})
    return WeightsVariant(
        name=weights.name,
        fetch=_fetcher(arch, weights),
        preprocess=_preprocess_of(weights),
        num_classes=len(meta["categories"]),
        num_params=meta["num_params"],
        local_path=_cache_path(weights),
        url=weights.url,
        file_size_mib=meta.get("_file_size"),
        imagenet_top1=imagenet.get("acc@1"),
        imagenet_top5=imagenet.get("acc@5"),
    )


@functools.cache
def _variants(arch: str) -> dict[str, WeightsVariant]:
    # torchvision's weights enum (ResNet50_Weights) is the one source: iterating it gives the
    # distinct variants, __members__ adds the DEFAULT alias.
    enum = tvm.get_model_weights(arch)
    variants = {member.name: _variant(arch, member) for member in enum}
    members: dict[str, Any] = dict(enum.__members__)
    return {name: variants[member.name] for name, member in members.items()}


# ------------------------------------------------------------------------------------ ResNet

_RESNET_LAYER = re.compile(r"^layer([1-4])\.")


def _resnet_key(key: str) -> str:
    if key.startswith("conv1."):
        return "stages.0.0." + key.removeprefix("conv1.")
    if key.startswith("bn1."):
        return "stages.0.1." + key.removeprefix("bn1.")
    if key.startswith("fc."):
        return "head." + key.removeprefix("fc.")
    return _RESNET_LAYER.sub(r"stages.\1.", key)


def _resnet(
    arch: str, *, weights: str | Path | None, num_classes: int | None, dropout: float
) -> ImageClassifier:
    def backbone() -> tuple[list[nn.Module], int]:
        net: tvm.ResNet = getattr(tvm, arch)(weights=None)
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        return [stem, net.layer1, net.layer2, net.layer3, net.layer4], net.fc.in_features

    return build_classifier(
        arch,
        weights=weights,
        num_classes=num_classes,
        dropout=dropout,
        make_backbone=backbone,
    )


@register_model()
def resnet18(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.0
) -> ImageClassifier:
    """ResNet-18 (torchvision) as a 5-stage :class:`ImageClassifier`.

    Args:
        weights: ``None`` (random init), ``"DEFAULT"``, a variant listed below, or a local
            weights file.
        num_classes: Head outputs; ``None`` keeps the weights' head.
        dropout: Dropout before the head; ResNets have none, hence 0.0.

    Example:
        >>> model = resnet18(weights=None, num_classes=10)
        >>> model.num_classes
        10
    """
    return _resnet("resnet18", weights=weights, num_classes=num_classes, dropout=dropout)


@register_model()
def resnet34(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.0
) -> ImageClassifier:
    """ResNet-34 (torchvision) as a 5-stage :class:`ImageClassifier`.

    Args:
        weights: ``None`` (random init), ``"DEFAULT"``, a variant listed below, or a local
            weights file.
        num_classes: Head outputs; ``None`` keeps the weights' head.
        dropout: Dropout before the head; ResNets have none, hence 0.0.

    Example:
        >>> model = resnet34(weights=None, num_classes=10)
        >>> model.num_classes
        10
    """
    return _resnet("resnet34", weights=weights, num_classes=num_classes, dropout=dropout)


@register_model()
def resnet50(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.0
) -> ImageClassifier:
    """ResNet-50 (torchvision) as a 5-stage :class:`ImageClassifier`.

    Args:
        weights: ``None`` (random init), ``"DEFAULT"``, a variant listed below, or a local
            weights file.
        num_classes: Head outputs; ``None`` keeps the weights' head.
        dropout: Dropout before the head; ResNets have none, hence 0.0.

    Example:
        >>> model = resnet50(weights=None, num_classes=10)
        >>> model.num_classes
        10
    """
    return _resnet("resnet50", weights=weights, num_classes=num_classes, dropout=dropout)


@register_model()
def resnet101(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.0
) -> ImageClassifier:
    """ResNet-101 (torchvision) as a 5-stage :class:`ImageClassifier`.

    Args:
        weights: ``None`` (random init), ``"DEFAULT"``, a variant listed below, or a local
            weights file.
        num_classes: Head outputs; ``None`` keeps the weights' head.
        dropout: Dropout before the head; ResNets have none, hence 0.0.

    Example:
        >>> model = resnet101(weights=None, num_classes=10)
        >>> model.num_classes
        10
    """
    return _resnet("resnet101", weights=weights, num_classes=num_classes, dropout=dropout)


@register_model()
def resnet152(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.0
) -> ImageClassifier:
    """ResNet-152 (torchvision) as a 5-stage :class:`ImageClassifier`.

    Args:
        weights: ``None`` (random init), ``"DEFAULT"``, a variant listed below, or a local
            weights file.
        num_classes: Head outputs; ``None`` keeps the weights' head.
        dropout: Dropout before the head; ResNets have none, hence 0.0.

    Example:
        >>> model = resnet152(weights=None, num_classes=10)
        >>> model.num_classes
        10
    """
    return _resnet("resnet152", weights=weights, num_classes=num_classes, dropout=dropout)


# ------------------------------------------------------------------------------ EfficientNet

_EFFICIENTNET_FEATURES = re.compile(r"^features\.(\d+)\.")


def _efficientnet_key(key: str) -> str:
    if key.startswith("classifier.1."):
        return "head." + key.removeprefix("classifier.1.")
    return _EFFICIENTNET_FEATURES.sub(r"stages.\1.", key)


def _efficientnet(
    arch: str, *, weights: str | Path | None, num_classes: int | None, dropout: float
) -> ImageClassifier:
    def backbone() -> tuple[list[nn.Module], int]:
        net: tvm.EfficientNet = getattr(tvm, arch)(weights=None)
        linear = net.classifier[1]
        assert isinstance(linear, nn.Linear)  # torchvision's layout, not user input
        return list(net.features), linear.in_features

    return build_classifier(
        arch,
        weights=weights,
        num_classes=num_classes,
        dropout=dropout,
        make_backbone=backbone,
    )


@register_model()
def efficientnet_b0(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.2
) -> ImageClassifier:
    """EfficientNet-B0 (torchvision) as a 9-stage :class:`ImageClassifier`.

    Args:
        weights: ``None`` (random init), ``"DEFAULT"``, a variant listed below, or a local
            weights file.
        num_classes: Head outputs; ``None`` keeps the weights' head.
        dropout: Dropout before the head; the default is torchvision's.

    Example:
        >>> model = efficientnet_b0(weights=None, num_classes=10)
        >>> model.num_classes
        10
    """
    return _efficientnet(
        "efficientnet_b0", weights=weights, num_classes=num_classes, dropout=dropout
    )


@register_model()
def efficientnet_b1(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.2
) -> ImageClassifier:
    """EfficientNet-B1 (torchvision) as a 9-stage :class:`ImageClassifier`.

    Args:
        weights: ``None`` (random init), ``"DEFAULT"``, a variant listed below, or a local
            weights file.
        num_classes: Head outputs; ``None`` keeps the weights' head.
        dropout: Dropout before the head; the default is torchvision's.

    Example:
        >>> model = efficientnet_b1(weights=None, num_classes=10)
        >>> model.num_classes
        10
    """
    return _efficientnet(
        "efficientnet_b1", weights=weights, num_classes=num_classes, dropout=dropout
    )


@register_model()
def efficientnet_b2(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.3
) -> ImageClassifier:
    """EfficientNet-B2 (torchvision) as a 9-stage :class:`ImageClassifier`.

    Args:
        weights: ``None`` (random init), ``"DEFAULT"``, a variant listed below, or a local
            weights file.
        num_classes: Head outputs; ``None`` keeps the weights' head.
        dropout: Dropout before the head; the default is torchvision's.

    Example:
        >>> model = efficientnet_b2(weights=None, num_classes=10)
        >>> model.num_classes
        10
    """
    return _efficientnet(
        "efficientnet_b2", weights=weights, num_classes=num_classes, dropout=dropout
    )


@register_model()
def efficientnet_b3(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.3
) -> ImageClassifier:
    """EfficientNet-B3 (torchvision) as a 9-stage :class:`ImageClassifier`.

    Args:
        weights: ``None`` (random init), ``"DEFAULT"``, a variant listed below, or a local
            weights file.
        num_classes: Head outputs; ``None`` keeps the weights' head.
        dropout: Dropout before the head; the default is torchvision's.

    Example:
        >>> model = efficientnet_b3(weights=None, num_classes=10)
        >>> model.num_classes
        10
    """
    return _efficientnet(
        "efficientnet_b3", weights=weights, num_classes=num_classes, dropout=dropout
    )


@register_model()
def efficientnet_b4(
    *, weights: str | Path | None = None, num_classes: int | None = None, dropout: float = 0.4
) -> ImageClassifier:
    """EfficientNet-B4 (torchvision) as a 9-stage :class:`ImageClassifier`.

    Args:
        weights: ``None`` (random init), ``"DEFAULT"``, a variant listed below, or a local
            weights file.
        num_classes: Head outputs; ``None`` keeps the weights' head.
        dropout: Dropout before the head; the default is torchvision's.

    Example:
        >>> model = efficientnet_b4(weights=None, num_classes=10)
        >>> model.num_classes
        10
    """
    return _efficientnet(
        "efficientnet_b4", weights=weights, num_classes=num_classes, dropout=dropout
    )


for _arch in __all__:
    register_key_converter(_arch, _resnet_key if _arch.startswith("resnet") else _efficientnet_key)
    register_weights(_arch, functools.partial(_variants, _arch))
    document_variants(globals()[_arch], _arch)
