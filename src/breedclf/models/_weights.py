"""Weights: reading local files, mapping foreign key names, strict loading with readable errors."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from breedclf.errors import ConfigurationError, ModelError
from breedclf.models._classifier import ImageClassifier
from breedclf.preprocessing import PreprocessSpec

__all__ = ["StateDict", "WeightsVariant", "build_classifier", "load_weights", "read_state_dict"]

StateDict = dict[str, torch.Tensor]
KeyConverter = Callable[[str], str]

WEIGHTS_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
_OWN_PREFIXES = ("stages.", "head.")
# Prefixes added by DataParallel/DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_MAX_LISTED = 8

# Per-architecture mapping from a foreign key format (torchvision, efficientnet_pytorch) to
# ImageClassifier keys; filled by the modules that define the architectures.
_KEY_CONVERTERS: dict[str, KeyConverter] = {}


def register_key_converter(arch: str, converter: KeyConverter) -> None:
    """Let :func:`load_weights` read ``arch`` checkpoints saved in a foreign key format."""
    _KEY_CONVERTERS[arch] = converter


@dataclass(frozen=True)
class WeightsVariant:
    """A named set of pretrained weights of one architecture (``IMAGENET1K_V2``).

    Attributes:
        name: Variant name, as users pass it (``weights="IMAGENET1K_V2"``).
        fetch: Returns the state dict (downloads or reads a packaged file).
        preprocess: How inputs must be prepared for these weights.
        num_classes: Outputs of the head the weights were trained with.
    """

    name: str
    fetch: Callable[[], Mapping[str, torch.Tensor]]
    preprocess: PreprocessSpec
    num_classes: int


def read_state_dict(path: str | Path) -> StateDict:
    """Read a state dict from a ``.safetensors`` or ``.pt``/``.pth`` file (tensors only, on CPU).

    Pickled files are read with ``weights_only=True``, so a file cannot run code. A checkpoint
    that nests the weights under ``"state_dict"`` or ``"model"`` is unwrapped.

    Raises:
        ModelError: The file is missing or does not hold a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            loaded: object = load_file(str(path), device="cpu")
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors, pickle and zip errors share no base class
        if isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower():
            reason = (
                "it holds pickled Python objects, not only tensors (a whole model saved with "
                "torch.save(model)?)"
            )
        else:
            reason = f"{type(exc).__name__}: {exc}"
        raise ModelError(
            f"cannot read weights from {path}: {reason}. Expected a state dict saved with "
            "safetensors.torch.save_file(model.state_dict(), ...) or "
            "torch.save(model.state_dict(), ...)"
        ) from exc
    if isinstance(loaded, Mapping) and not _is_tensor_mapping(loaded):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not _is_tensor_mapping(loaded):
        raise ModelError(
            f"{path} does not contain a state dict (a mapping of parameter names to tensors); "
            f"got {type(loaded).__name__}"
        )
    return dict(loaded)


def _is_tensor_mapping(obj: Mapping[object, object]) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def to_classifier_keys(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    """Rename keys of a foreign checkpoint of ``arch`` to ImageClassifier keys.

    Wrapper prefixes (``module.``, ``_orig_mod.``) are dropped; a state dict already in
    ImageClassifier format is returned unchanged.
    """
    out: StateDict = {}
    for key, value in state_dict.items():
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key.removeprefix(prefix)
        out[key] = value
    if all(k.startswith(_OWN_PREFIXES) for k in out):
        return out
    converter = _KEY_CONVERTERS.get(arch)
    if converter is None:
        return out
    return {converter(k): v for k, v in out.items()}


def load_weights(
    model: ImageClassifier, weights: Mapping[str, torch.Tensor] | str | Path
) -> ImageClassifier:
    """Load weights into ``model`` strictly: every key present and every shape equal.

    Checkpoints in the architecture's torchvision or ``efficientnet_pytorch`` key format are
    mapped onto the model's keys first.

    Args:
        model: The model to fill (in place).
        weights: A state dict, or a path to a ``.safetensors`` / ``.pt`` / ``.pth`` file.

    Returns:
        The same model, for chaining.

    Raises:
        ModelError: A key is missing or unexpected, or a shape differs. The message names
            the keys and both shapes, e.g. ``head.weight: checkpoint [133, 1280] vs model
            [10, 1280] — the checkpoint was trained for 133 classes``.

    Example:
        >>> model = create_model("resnet18", num_classes=133)  # doctest: +SKIP
        >>> load_weights(model, "runs/dogs/model.safetensors")  # doctest: +SKIP
    """
    source = "the checkpoint"
    if isinstance(weights, str | Path):
        source = str(weights)
        weights = read_state_dict(weights)
    state_dict = to_classifier_keys(weights, model.arch)
    expected = model.state_dict()

    problems: list[str] = []
    mismatched = [
        k
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if mismatched:
        lines = [_describe_mismatch(k, state_dict[k], expected[k], model) for k in mismatched]
        problems.append(f"shape mismatch ({len(mismatched)}):\n    " + "\n    ".join(lines))
    missing = [k for k in expected if k not in state_dict]
    if missing:
        problems.append(f"missing from {source} ({len(missing)}): {_key_list(missing)}")
    unexpected = [k for k in state_dict if k not in expected]
    if unexpected:
        problems.append(f"not in the model ({len(unexpected)}): {_key_list(unexpected)}")
    if problems:
        raise ModelError(
            f"weights from {source} do not fit {model.arch} "
            f"({model.num_classes} classes):\n  " + "\n  ".join(problems)
        )
    model.load_state_dict(state_dict, strict=True)
    return model


def _describe_mismatch(
    key: str, got: torch.Tensor, want: torch.Tensor, model: ImageClassifier
) -> str:
    line = f"{key}: checkpoint {list(got.shape)} vs model {list(want.shape)}"
    if key in ("head.weight", "head.bias") and got.shape[1:] == want.shape[1:]:
        line += (
            f" — the checkpoint was trained for {got.shape[0]} classes, the model has "
            f"{model.num_classes}: build the model with num_classes={got.shape[0]}, or load "
            "through create_model(..., num_classes=N), which replaces the head explicitly"
        )
    return line


def _key_list(keys: Iterable[str]) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else "")


def is_weights_path(weights: str | Path) -> bool:
    """Whether ``weights`` names a file rather than a weights variant such as ``"DEFAULT"``."""
    if isinstance(weights, Path):
        return True
    path = Path(weights)
    return path.suffix in WEIGHTS_SUFFIXES or "/" in weights or "\\" in weights or path.exists()


def build_classifier(
    arch: str,
    *,
    weights: str | Path | None,
    num_classes: int | None,
    dropout: float,
    variants: Mapping[str, WeightsVariant],
    make_backbone: Callable[[], tuple[list[torch.nn.Module], int]],
) -> ImageClassifier:
    """Shared body of every builder: resolve ``weights``, build, load strictly.

    ``variants`` maps each accepted variant name (``DEFAULT`` included) to its weights; the
    ``DEFAULT`` variant's preprocessing is used for random init and local files.
    """
    variant: WeightsVariant | None = None
    state_dict: StateDict | None = None
    if weights is not None:
        if isinstance(weights, Path) or (weights not in variants and is_weights_path(weights)):
            state_dict = to_classifier_keys(read_state_dict(weights), arch)
        else:
            variant = resolve_variant(arch, weights, variants)
            state_dict = to_classifier_keys(variant.fetch(), arch)

    native = (variant or variants["DEFAULT"]).num_classes
    head = state_dict.get("head.weight") if state_dict is not None else None
    if head is not None and head.ndim == 2:
        native = head.shape[0]
    stages, num_features = make_backbone()
    model = ImageClassifier(
        arch=arch,
        stages=stages,
        num_features=num_features,
        # A count that differs from the weights' head fails in load_weights with a clear message.
        num_classes=native if num_classes is None else num_classes,
        preprocess=(variant or variants["DEFAULT"]).preprocess,
        dropout=dropout,
    )
    if state_dict is not None:
        load_weights(model, state_dict)
    return model


def resolve_variant(arch: str, name: str, variants: Mapping[str, WeightsVariant]) -> WeightsVariant:
    """The variant called ``name``; an unknown name is an error listing the valid ones."""
    try:
        return variants[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown weights {name!r} for {arch}; valid variants: {', '.join(variants)}, "
            f"or a path to a local weights file ({', '.join(WEIGHTS_SUFFIXES)})"
        ) from None
