"""Weights: the variants of each architecture, reading local files, mapping foreign key names,
strict loading with readable errors."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict
from safetensors.torch import load_file

from breedclf.errors import ConfigurationError, ModelError
from breedclf.models._classifier import ImageClassifier
from breedclf.preprocessing import PreprocessSpec

__all__ = [
    "StateDict",
    "WeightsInfo",
    "WeightsVariant",
    "build_classifier",
    "describe_weights",
    "document_variants",
    "load_weights",
    "read_state_dict",
    "register_weights",
]

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
        num_params: Parameters of the architecture with that head.
        local_path: Where ``fetch`` reads the file without downloading (it may not exist yet).
        url: Where ``fetch`` downloads the file from; ``None`` for packaged weights.
        file_size_mib: Size of the file; ``None`` to read it from ``local_path``.
        imagenet_top1: Published ImageNet-1k validation top-1 accuracy, in percent.
        imagenet_top5: Published ImageNet-1k validation top-5 accuracy, in percent.
    """

    name: str
    fetch: Callable[[], Mapping[str, torch.Tensor]]
    preprocess: PreprocessSpec
    num_classes: int
    num_params: int
    local_path: Callable[[], Path]
    url: str | None = None
    file_size_mib: float | None = None
    imagenet_top1: float | None = None
    imagenet_top5: float | None = None


class WeightsInfo(BaseModel):
    """What :func:`~breedclf.models.list_weights` reports about one pretrained weights variant.

    Attributes:
        arch: The registered model name.
        name: The variant name to pass as ``weights=`` (``"IMAGENET1K_V2"``).
        aliases: Other names that resolve to this variant (``("DEFAULT",)``).
        num_classes: Outputs of the head the weights were trained with.
        num_params: Parameters of the model with that head.
        preprocess: Resize, centre crop, mean/std and interpolation the weights expect;
            models built from them carry it as ``model.preprocess``.
        imagenet_top1: Published ImageNet-1k top-1 accuracy in percent (torchvision's
            ``meta["_metrics"]``), or ``None`` where none is published.
        imagenet_top5: Published ImageNet-1k top-5 accuracy in percent, or ``None``.
        url: Download address, or ``None`` for weights shipped in a Python package.
        file_size_mib: Size of the weights file in MiB (2**20 bytes), as torchvision reports it.
        local_path: Where the file is read without a download: torch hub's cache
            (``$TORCH_HOME/hub/checkpoints``) for torchvision weights, the package's file for
            Lite0. Copying a downloaded file there makes it available offline.
        available_offline: Whether ``local_path`` exists now, i.e. loading needs no network.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    arch: str
    name: str
    aliases: tuple[str, ...]
    num_classes: int
    num_params: int
    preprocess: PreprocessSpec
    imagenet_top1: float | None
    imagenet_top5: float | None
    url: str | None
    file_size_mib: float | None
    local_path: Path
    available_offline: bool

    @property
    def is_default(self) -> bool:
        """Whether ``weights="DEFAULT"`` resolves to this variant."""
        return "DEFAULT" in self.aliases


# Per-architecture weights variants, keyed by every accepted name (``DEFAULT`` included);
# providers are called on first use and may compute their table lazily.
_WEIGHTS: dict[str, Callable[[], Mapping[str, WeightsVariant]]] = {}


def register_weights(arch: str, variants: Callable[[], Mapping[str, WeightsVariant]]) -> None:
    """Declare the pretrained variants of ``arch``; the one source of builders and listings."""
    _WEIGHTS[arch] = variants


def weights_variants(arch: str) -> Mapping[str, WeightsVariant]:
    """Every accepted variant name of ``arch`` (aliases included); empty if it has none."""
    provider = _WEIGHTS.get(arch)
    return provider() if provider is not None else {}


def describe_weights(arch: str) -> list[WeightsInfo]:
    """One :class:`WeightsInfo` per distinct variant of ``arch``, aliases folded in."""
    variants = weights_variants(arch)
    infos: list[WeightsInfo] = []
    for variant in dict.fromkeys(variants.values()):  # distinct, in declaration order
        local = variant.local_path()
        size = variant.file_size_mib
        if size is None and local.is_file():
            size = local.stat().st_size / 2**20
        infos.append(
            WeightsInfo(
                arch=arch,
                name=variant.name,
                aliases=tuple(k for k, v in variants.items() if v is variant and k != variant.name),
                num_classes=variant.num_classes,
                num_params=variant.num_params,
                preprocess=variant.preprocess,
                imagenet_top1=variant.imagenet_top1,
                imagenet_top5=variant.imagenet_top5,
                url=variant.url,
                file_size_mib=size,
                local_path=local,
                available_offline=local.is_file(),
            )
        )
    return infos


def document_variants(builder: Callable[..., object], arch: str) -> None:
    """Append to ``builder``'s docstring a list of the variants of ``arch``, made from their
    declarations so that it cannot drift from them."""
    if builder.__doc__ is not None:  # None under python -OO
        builder.__doc__ = builder.__doc__.rstrip() + _variants_docstring(arch)


def _variants_docstring(arch: str) -> str:
    variants = weights_variants(arch)
    lines = []
    for variant in dict.fromkeys(variants.values()):
        aliases = [k for k, v in variants.items() if v is variant and k != variant.name]
        alias = "".join(f" (``{a}``)" for a in aliases)
        spec = variant.preprocess
        facts = [f"{spec.input_size} px crop of {spec.resize_size} px, {spec.interpolation}"]
        if variant.imagenet_top1 is not None:
            facts.append(f"ImageNet-1k top-1 {variant.imagenet_top1:.2f} %")
        facts.append("downloaded on first use" if variant.url else "shipped in a package")
        lines.append(f"        ``{variant.name}``{alias}: {'; '.join(facts)}.")
    header = f'Weights variants (details: ``list_weights("{arch}")``):'
    return f"\n\n    {header}\n\n" + "\n".join(lines) + "\n"


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
    make_backbone: Callable[[], tuple[list[torch.nn.Module], int]],
) -> ImageClassifier:
    """Shared body of every builder: resolve ``weights``, build, load strictly.

    The variants are those declared with :func:`register_weights`; the ``DEFAULT`` variant's
    preprocessing is used for random init and local files.
    """
    variants = weights_variants(arch)
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
