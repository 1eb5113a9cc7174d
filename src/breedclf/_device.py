"""Where a model runs and in which precision: one resolver for training and loading.

``auto`` means CUDA when present, else CPU. Apple's MPS is used only when asked for by name
(``device="mps"``): breedclf is not tested on Apple hardware, and an automatic choice should be
one that is known to work. The training loop keeps its MPS accumulators in float32 (MPS has no
float64), so an explicit ``mps`` trains.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch

from breedclf.errors import ConfigurationError

__all__ = ["AmpChoice", "resolve_amp", "resolve_device"]

log = logging.getLogger("breedclf")

AmpChoice = Literal["auto", "bf16", "fp16", "off"]

#: Compute capability from which bf16 runs natively on NVIDIA GPUs (Ampere, A100 and later).
#: Older GPUs (T4 7.5, V100 7.0) report ``torch.cuda.is_bf16_supported()`` because PyTorch
#: emulates bf16 there, which is slower than fp32.
BF16_MIN_CAPABILITY = (8, 0)


def resolve_device(name: str | torch.device, *, field: str = "training.device") -> torch.device:
    """The device that ``name`` stands for, checked to exist.

    Args:
        name: ``"auto"`` (CUDA when present, else CPU; never MPS), or anything
            :class:`torch.device` accepts: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        field: The setting's name, used in error messages.

    Returns:
        The device; a bare ``"cuda"`` stays index-free (the current CUDA device).

    Raises:
        ConfigurationError: ``name`` is not a device, or names one this machine lacks.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(name, str) and name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigurationError(
            f"{field}={name!r} is not a device: {exc}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigurationError(
                f"{field}={str(name)!r} but CUDA is not available on this machine; "
                "use 'auto' or 'cpu'"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigurationError(
                f"{field}={str(name)!r} but this machine has {torch.cuda.device_count()} CUDA "
                f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigurationError(
                f"{field}={str(name)!r} but Apple MPS is not available on this machine; "
                "use 'auto' or 'cpu'"
            )
    elif device.type != "cpu":
        raise ConfigurationError(
            f"{field}={str(name)!r}: breedclf runs on 'cpu', 'cuda[:N]' or 'mps', "
            f"not {device.type!r}"
        )
    return device


def resolve_amp(
    choice: AmpChoice,
    device: torch.device,
    *,
    capability: tuple[int, int] | None = None,
) -> torch.dtype | None:
    """The autocast dtype for ``training.amp=choice`` on ``device`` (``None``: full precision).

    ============  =============================================  ==========  =================
    choice        CUDA                                           CPU         MPS
    ============  =============================================  ==========  =================
    ``auto``      bf16 on compute capability ≥ 8.0, else fp16    off         off
    ``bf16``      bf16 (emulated, slow, below 8.0: warned)       bf16        refused
    ``fp16``      fp16 with loss scaling                         refused     refused
    ``off``       off                                            off         off
    ============  =============================================  ==========  =================

    fp16 needs loss scaling, which breedclf applies on CUDA only; CPU autocast supports bf16.

    Args:
        choice: The ``training.amp`` setting.
        device: The training device.
        capability: The CUDA compute capability ``(major, minor)``; read from ``device`` when
            ``None`` (pass it to decide for a GPU that is not present).

    Raises:
        ConfigurationError: The precision is not available on ``device``; the message names the
            setting that works.

    Example:
        >>> resolve_amp("auto", torch.device("cuda"), capability=(7, 5))  # a T4
        torch.float16
        >>> resolve_amp("auto", torch.device("cuda"), capability=(8, 0))  # an A100
        torch.bfloat16
    """
    if choice == "off":
        return None
    if device.type == "cuda":
        if capability is None:
            capability = torch.cuda.get_device_capability(device)
        native_bf16 = capability >= BF16_MIN_CAPABILITY
        if choice == "auto":
            return torch.bfloat16 if native_bf16 else torch.float16
        if choice == "bf16" and not native_bf16:
            log.warning(
                "training.amp='bf16' on a GPU of compute capability %d.%d: bf16 is emulated "
                "there and slower than fp32; 'fp16' (or 'auto') is the fast choice",
                *capability,
            )
        return torch.bfloat16 if choice == "bf16" else torch.float16
    if choice == "auto":
        return None
    if device.type == "cpu":
        if choice == "bf16":
            return torch.bfloat16
        raise ConfigurationError(
            "training.amp='fp16' is not supported on CPU (fp16 needs loss scaling, which "
            "breedclf applies on CUDA only); set training.amp to 'bf16' (CPU autocast) or 'off'"
        )
    raise ConfigurationError(
        f"training.amp={choice!r} is not supported on {device.type!r}; set training.amp to "
        "'off' (or 'auto', which is off there)"
    )
