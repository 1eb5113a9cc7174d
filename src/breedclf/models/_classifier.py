"""The common shape of every breedclf model: stages → pooled features → dropout → linear head."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from breedclf.config import FreezeConfig
from breedclf.errors import ConfigurationError, ModelError
from breedclf.preprocessing import PreprocessSpec

__all__ = ["ImageClassifier"]


class ImageClassifier(nn.Module):
    """A backbone split into ordered stages, global average pooling and a linear head.

    Every builder in the model registry returns one, so freezing, per-group learning rates,
    head replacement and saving work the same for ResNets and EfficientNets.

    Args:
        arch: Registered architecture name (saved with the model to rebuild it).
        stages: Backbone stages, input side first (the stem is stage 0).
        num_features: Channels of the last stage's output.
        num_classes: Outputs of the head.
        preprocess: How inputs must be prepared for the backbone's weights.
        dropout: Dropout probability before the head.
    """

    def __init__(
        self,
        *,
        arch: str,
        stages: Sequence[nn.Module],
        num_features: int,
        num_classes: int,
        preprocess: PreprocessSpec,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ModelError(f"num_classes must be >= 1, got {num_classes}")
        self.arch = arch
        self.preprocess = preprocess
        self.num_features = num_features
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(num_features, num_classes)
        self._frozen_stages = 0

    @property
    def num_classes(self) -> int:
        """Number of classes the head predicts."""
        return self.head.out_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features, shape ``[batch, num_features]``."""
        for stage in self.stages:
            x = stage(x)
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape ``[batch, num_classes]``."""
        out: torch.Tensor = self.head(self.dropout(self.forward_features(x)))
        return out

    def reset_classifier(
        self, num_classes: int, *, generator: torch.Generator | None = None
    ) -> None:
        """Replace the head with a freshly initialised one for ``num_classes`` classes.

        Args:
            num_classes: New number of outputs.
            generator: Seeds the new head's initialisation (reproducible runs).
        """
        if num_classes < 1:
            raise ModelError(f"num_classes must be >= 1, got {num_classes}")
        head = nn.Linear(self.num_features, num_classes)
        bound = 1.0 / self.num_features**0.5
        with torch.no_grad():
            head.weight.uniform_(-bound, bound, generator=generator)
            head.bias.uniform_(-bound, bound, generator=generator)
        ref = self.head.weight
        self.head = head.to(device=ref.device, dtype=ref.dtype)

    def freeze(self, config: FreezeConfig) -> None:
        """Apply a freeze policy: stop gradients (and BatchNorm statistics) of frozen stages.

        Raises:
            ConfigurationError: ``last_n`` asks for more stages than the model has.
        """
        n = len(self.stages)
        if config.policy == "none":
            frozen = 0
        elif config.policy == "backbone":
            frozen = n
        else:
            if config.trainable_stages > n:
                raise ConfigurationError(
                    f"freeze.trainable_stages={config.trainable_stages} but {self.arch} has only "
                    f"{n} stages; use a value from 0 to {n}"
                )
            frozen = n - config.trainable_stages
        self._frozen_stages = frozen
        for i, stage in enumerate(self.stages):
            stage.requires_grad_(i >= frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> ImageClassifier:
        """Set training mode; frozen stages stay in eval mode (fixed BatchNorm statistics)."""
        super().train(mode)
        for stage in list(self.stages)[: self._frozen_stages]:
            stage.eval()
        return self

    def parameter_groups(
        self, *, lr: float, backbone_lr: float | None, weight_decay: float
    ) -> list[dict[str, Any]]:
        """Optimizer parameter groups: head vs backbone learning rates; no decay on norms/biases.

        Frozen parameters are left out. Each group carries a ``name`` for logging.
        """
        backbone_lr = lr if backbone_lr is None else backbone_lr
        groups: dict[str, dict[str, Any]] = {}
        for part, part_lr, named in (
            ("head", lr, self.head.named_parameters()),
            ("backbone", backbone_lr, self._backbone_named_parameters()),
        ):
            for pname, param in named:
                if not param.requires_grad:
                    continue
                no_decay = param.ndim <= 1 or pname.endswith(".bias")
                key = f"{part}{'_no_decay' if no_decay else ''}"
                group = groups.setdefault(
                    key,
                    {
                        "name": key,
                        "params": [],
                        "lr": part_lr,
                        "weight_decay": 0.0 if no_decay else weight_decay,
                    },
                )
                group["params"].append(param)
        return list(groups.values())

    def _backbone_named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        yield from self.stages.named_parameters()
