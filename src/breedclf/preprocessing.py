"""Preprocessing specs that travel with model weights, and the transforms built from them.

A :class:`PreprocessSpec` is saved with every model, so training, evaluation and serving resize,
crop and normalise identically. Nothing outside a spec hard-codes normalisation statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Literal

import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from breedclf.config import AugmentConfig

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PreprocessSpec", "Transform", "create_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Transform = Callable[[Image.Image], torch.Tensor]
_Channel = Annotated[float, Field(allow_inf_nan=False)]


class PreprocessSpec(BaseModel):
    """How images must be prepared for a model.

    Attributes:
        input_size: Side of the square the model sees (centre crop at evaluation).
        resize_size: Shorter side the image is resized to before the centre crop.
        mean: Per-channel mean subtracted after scaling pixels to [0, 1].
        std: Per-channel standard deviation divided by.
        interpolation: Resampling filter for resizes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_size: PositiveInt = 224
    resize_size: PositiveInt = 256
    mean: tuple[_Channel, _Channel, _Channel] = IMAGENET_MEAN
    std: tuple[
        Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]
    ] = IMAGENET_STD
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"

    @property
    def crop_fraction(self) -> float:
        """``input_size / resize_size``: the share of the shorter side kept by the centre crop."""
        return self.input_size / self.resize_size

    def with_input_size(self, input_size: int) -> PreprocessSpec:
        """The same spec at another resolution, keeping the crop fraction."""
        resize = max(input_size, round(input_size / self.crop_fraction))
        return PreprocessSpec.model_validate(
            {**self.model_dump(), "input_size": input_size, "resize_size": resize}
        )

    def draft_size(self, *, train: bool, augment: AugmentConfig | None = None) -> int:
        """Smallest decode size that loses no detail the transform would keep (JPEG draft)."""
        if not train:
            return self.resize_size
        min_scale = (augment or AugmentConfig()).scale[0]
        # A random crop covers at least min_scale of the area, i.e. sqrt(min_scale) of a side.
        return math.ceil(self.input_size / math.sqrt(min_scale))


def create_transform(
    spec: PreprocessSpec, *, train: bool, augment: AugmentConfig | None = None
) -> Transform:
    """Build the PIL → normalised CHW float tensor transform for ``spec``.

    Args:
        spec: The model's preprocessing spec.
        train: Random resized crop + flip (+ colour jitter) instead of resize + centre crop.
        augment: Training augmentation settings (defaults when ``None``).
    """
    interpolation = InterpolationMode(spec.interpolation)
    steps: list[Callable[..., object]]
    if train:
        aug = augment or AugmentConfig()
        steps = [
            T.RandomResizedCrop(
                spec.input_size, scale=aug.scale, interpolation=interpolation, antialias=True
            )
        ]
        if aug.hflip:
            steps.append(T.RandomHorizontalFlip())
        if aug.color_jitter > 0:
            j = aug.color_jitter
            steps.append(T.ColorJitter(brightness=j, contrast=j, saturation=j))
    else:
        steps = [
            T.Resize(spec.resize_size, interpolation=interpolation, antialias=True),
            T.CenterCrop(spec.input_size),
        ]
    steps += [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(spec.mean, spec.std)]
    composed = T.Compose(steps)

    def transform(image: Image.Image) -> torch.Tensor:
        out = composed(image)
        assert isinstance(out, torch.Tensor)
        return out

    return transform
