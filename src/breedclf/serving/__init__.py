"""Serve saved models: SageMaker handlers, an HTTP server with a web page, a client, packaging.

* :func:`model_fn`, :func:`input_fn`, :func:`predict_fn`, :func:`output_fn` — the SageMaker
  PyTorch inference handlers over a saved model directory.
* :func:`create_app` — the ASGI server (``breedclf serve``): SageMaker's ``/ping`` and
  ``/invocations`` contract, micro-batching, limits, a web page at ``/``. Needs the ``serve``
  extra (``pip install 'breedclf[serve]'``).
* :class:`Predictor` — a client for such an endpoint (standard library only).
* :func:`package_model` — ``model.tar.gz`` for SageMaker's PyTorch inference container.

Attributes are imported on first use, so ``import breedclf.serving`` is cheap and works without
the ``serve`` extra.

Example:
    >>> from breedclf.serving import Predictor  # doctest: +SKIP
    >>> Predictor("http://127.0.0.1:8080").predict("dog.jpg", top_k=3)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from breedclf._lazy import load_attribute
from breedclf.serving._deps import SERVER_PACKAGES

if TYPE_CHECKING:
    from breedclf.serving._app import create_app
    from breedclf.serving._batching import BatchResult, BatchStats, MicroBatcher
    from breedclf.serving._client import (
        EndpointConnectionError,
        EndpointError,
        EndpointRequestError,
        EndpointServerError,
        Predictor,
    )
    from breedclf.serving._config import ServingConfig
    from breedclf.serving._handler import (
        InferenceRequest,
        InferenceResult,
        input_fn,
        model_fn,
        output_fn,
        predict_fn,
    )
    from breedclf.serving._package import package_model
    from breedclf.serving._protocol import RequestError, RequestLimits

__all__ = [
    "BatchResult",
    "BatchStats",
    "EndpointConnectionError",
    "EndpointError",
    "EndpointRequestError",
    "EndpointServerError",
    "InferenceRequest",
    "InferenceResult",
    "MicroBatcher",
    "Predictor",
    "RequestError",
    "RequestLimits",
    "ServingConfig",
    "create_app",
    "input_fn",
    "model_fn",
    "output_fn",
    "package_model",
    "predict_fn",
]

_HOMES = {
    "create_app": "_app",
    "BatchResult": "_batching",
    "BatchStats": "_batching",
    "MicroBatcher": "_batching",
    "EndpointConnectionError": "_client",
    "EndpointError": "_client",
    "EndpointRequestError": "_client",
    "EndpointServerError": "_client",
    "Predictor": "_client",
    "ServingConfig": "_config",
    "InferenceRequest": "_handler",
    "InferenceResult": "_handler",
    "input_fn": "_handler",
    "model_fn": "_handler",
    "output_fn": "_handler",
    "predict_fn": "_handler",
    "package_model": "_package",
    "RequestError": "_protocol",
    "RequestLimits": "_protocol",
}


def __getattr__(name: str) -> Any:
    value = load_attribute(__name__, _HOMES, name, extra="serve", packages=SERVER_PACKAGES)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
