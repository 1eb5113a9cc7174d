"""The model registry and :func:`create_model`, the one way the rest of breedclf builds models."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

import torch

from breedclf._registry import Registry
from breedclf.config import FreezeConfig
from breedclf.errors import ConfigurationError
from breedclf.models._classifier import ImageClassifier
from breedclf.models._weights import WeightsInfo, describe_weights

__all__ = [
    "MODELS",
    "ModelBuilder",
    "create_model",
    "get_default_dropout",
    "get_model_builder",
    "list_models",
    "list_weights",
    "register_model",
]


class ModelBuilder(Protocol):
    """A registered model builder: keyword-only arguments, returns an :class:`ImageClassifier`.

    ``num_classes=None`` means "the head the weights were trained with" (1000 for ImageNet,
    also for random init); a count that differs from pretrained weights is an error (use
    :func:`create_model`, which replaces the head explicitly). ``weights`` defaults to
    ``None`` (random init), as torchvision's builders; :func:`create_model` defaults to
    ``"DEFAULT"``. The default of ``dropout`` is the architecture's own (see
    :func:`get_default_dropout`).
    """

    def __call__(
        self,
        *,
        weights: str | Path | None = None,
        num_classes: int | None = None,
        dropout: float = ...,
    ) -> ImageClassifier: ...


B = TypeVar("B", bound=ModelBuilder)

MODELS = Registry[ModelBuilder]("model")
"""Every model builder, by name. Fill it with :func:`register_model`."""


def register_model(name: str | None = None) -> Callable[[B], B]:
    """Decorator that registers a model builder under ``name`` (default: the function's name).

    Args:
        name: Registry name; defaults to the decorated function's ``__name__``.

    Returns:
        A decorator that returns the builder unchanged.

    Raises:
        ConfigurationError: A model with that name is already registered.

    Example:
        >>> @register_model()  # doctest: +SKIP
        ... def my_net(*, weights=None, num_classes=None, dropout=0.1) -> ImageClassifier: ...
    """

    def decorator(builder: B) -> B:
        MODELS.register(name)(builder)
        return builder

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching a shell-style wildcard.

    Example:
        >>> list_models("resnet*")
        ['resnet101', 'resnet152', 'resnet18', 'resnet34', 'resnet50']
    """
    return MODELS.list(pattern)


def get_default_dropout(name: str) -> float:
    """The dropout before the head that model ``name`` is built with unless told otherwise.

    It is the default of the builder's ``dropout`` argument: the architecture's published
    value (torchvision's 0.2–0.4 for EfficientNet-B0–B4, 0.2 for Lite0, 0.0 for ResNets,
    which have none). :func:`create_model` and ``ModelConfig(dropout=None)`` use it.

    Raises:
        UnknownNameError: No such model.
        ConfigurationError: The builder declares no default for ``dropout``.

    Example:
        >>> get_default_dropout("efficientnet_b2"), get_default_dropout("resnet50")
        (0.3, 0.0)
    """
    parameter = inspect.signature(get_model_builder(name)).parameters.get("dropout")
    default = parameter.default if parameter is not None else inspect.Parameter.empty
    if isinstance(default, bool) or not isinstance(default, int | float):
        raise ConfigurationError(
            f"model {name!r} declares no default dropout (its builder's 'dropout' argument has "
            f"no numeric default); pass dropout=... explicitly, or give the builder a default"
        )
    return float(default)


def get_model_builder(name: str) -> ModelBuilder:
    """The builder registered as ``name``.

    Raises:
        UnknownNameError: No such model; the message suggests close matches.
    """
    return MODELS.get(name)


def list_weights(name: str) -> list[WeightsInfo]:
    """The pretrained weights variants of model ``name``, as torchvision's ``get_model_weights``.

    Everything is read offline: torchvision's weights enums carry their metadata, and Lite0's
    weights ship in a Python package. Nothing is downloaded.

    Args:
        name: Registered model name (see :func:`list_models`).

    Returns:
        One entry per variant, in declaration order; the one ``weights="DEFAULT"`` resolves to
        has ``is_default`` set. A model without pretrained weights gives an empty list.

    Raises:
        UnknownNameError: No such model; the message suggests close matches.

    Example:
        >>> [(w.name, w.aliases, w.imagenet_top1) for w in list_weights("resnet50")]
        [('IMAGENET1K_V1', (), 76.13), ('IMAGENET1K_V2', ('DEFAULT',), 80.858)]
        >>> [w.available_offline for w in list_weights("efficientnet_lite0")]
        [True]
    """
    get_model_builder(name)
    return describe_weights(name)


def create_model(
    name: str,
    *,
    num_classes: int,
    weights: str | Path | None = "DEFAULT",
    freeze: FreezeConfig | None = None,
    dropout: float | None = None,
    generator: torch.Generator | None = None,
) -> ImageClassifier:
    """Build a registered model for ``num_classes`` classes, from pretrained weights by default.

    Pretrained weights are loaded with their own head; when their class count differs from
    ``num_classes`` the head is then replaced explicitly (:meth:`ImageClassifier.reset_classifier`)
    with a new one initialised from ``generator``. Without weights the whole model is
    initialised from ``generator`` when one is given, so the same seed gives the same model.

    Args:
        name: Registered model name (see :func:`list_models`).
        num_classes: Outputs of the returned model's head.
        weights: ``"DEFAULT"`` (the default, as ``ModelConfig.weights``: the recommended
            pretrained variant, see :func:`list_weights`), a named variant such as
            ``"IMAGENET1K_V2"``, a path to a local ``.safetensors`` / ``.pt`` / ``.pth`` file
            in torchvision (or ``efficientnet_pytorch``) or breedclf key format, or ``None``
            for random init. torchvision's variants are downloaded on first use; Lite0's ship
            with breedclf.
        freeze: Freeze policy applied after loading; ``None`` trains everything.
        dropout: Dropout probability before the head; ``None`` (the default) uses the
            architecture's own (:func:`get_default_dropout`).
        generator: Seeds every random initialisation done here; the global RNG is left alone.

    Returns:
        The model, in training mode.

    Raises:
        UnknownNameError: ``name`` is not registered.
        ConfigurationError: ``weights`` names no variant of this model, or ``freeze`` asks for
            more stages than the model has.
        ModelError: The weights cannot be fetched or read, or do not fit the architecture.

    Example:
        >>> from breedclf.config import FreezeConfig
        >>> g = torch.Generator().manual_seed(0)
        >>> model = create_model("efficientnet_lite0", num_classes=133, weights="DEFAULT",
        ...                      freeze=FreezeConfig(policy="backbone"), generator=g)
        >>> model.num_classes
        133
    """
    builder = get_model_builder(name)
    if dropout is None:
        dropout = get_default_dropout(name)
    with _seeded_from(generator):
        if weights is None:
            model = builder(weights=None, num_classes=num_classes, dropout=dropout)
            if generator is not None:
                model.reset_classifier(num_classes, generator=generator)
        else:
            model = builder(weights=weights, num_classes=None, dropout=dropout)
            if model.num_classes != num_classes:
                model.reset_classifier(num_classes, generator=generator)
    if freeze is not None:
        model.freeze(freeze)
    return model


@contextmanager
def _seeded_from(generator: torch.Generator | None) -> Iterator[None]:
    """Run the block with the CPU RNG seeded from ``generator``, then restore the RNG."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
