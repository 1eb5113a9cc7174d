"""Settings of the local inference server: the one place their defaults are written.

``breedclf serve`` leaves every option it is not given to this class, and the per-request bounds
default to :class:`~breedclf.serving.RequestLimits`, which the SageMaker handler uses as they are.
"""

from __future__ import annotations

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from breedclf.config import BaseConfig
from breedclf.serving._protocol import RequestLimits

__all__ = ["ServingConfig"]

_LIMITS = RequestLimits()


class ServingConfig(BaseConfig):
    """How the HTTP server batches and bounds requests.

    Attributes:
        max_batch_size: Most images in one forward pass.
        max_wait_ms: Longest time a batch waits for requests that are already arriving; a lone
            request never waits.
        request_timeout_s: Longest time one request may take, body upload included (SageMaker
            endpoints must answer within 60 s).
        max_body_bytes: Largest request body (SageMaker's real-time limit is 6 MiB).
        max_pixels: Largest image decoded, in pixels (decompression bombs); breedclf's one limit,
            the same as in training.
        max_aspect_ratio: Longest / shortest side allowed.
        max_instances: Most images in one JSON ``instances`` request.
        max_queued: Most decoded images waiting for the model; more get a 503 at once.
        max_concurrency: Most requests handled at once; more get a 503 at once.
        max_buffered_bytes: Most bytes of request bodies held in memory at once (arriving or
            waiting to be decoded); a request that would go over gets a 503 at once.
        decode_threads: Threads decoding and preprocessing images beside the forward thread.
        torch_threads: Intra-op threads of the forward pass; ``None`` keeps torch's default (one
            per CPU the process sees — set it to the container's CPU quota when that is lower).
        warmup: Run one forward pass at start-up so the first request is not slow.
    """

    max_batch_size: PositiveInt = 8
    max_wait_ms: NonNegativeFloat = 5.0
    request_timeout_s: PositiveFloat = 30.0
    max_body_bytes: PositiveInt = _LIMITS.max_body_bytes
    max_pixels: PositiveInt = _LIMITS.max_pixels
    max_aspect_ratio: float = Field(default=_LIMITS.max_aspect_ratio, ge=1.0)
    max_instances: PositiveInt = _LIMITS.max_instances
    max_queued: PositiveInt = 256
    max_concurrency: PositiveInt = 128
    max_buffered_bytes: PositiveInt = 64 * 1024 * 1024
    decode_threads: PositiveInt = 2
    torch_threads: PositiveInt | None = None
    warmup: bool = True

    @model_validator(mode="after")
    def _body_fits_the_buffer(self) -> ServingConfig:
        if self.max_buffered_bytes < self.max_body_bytes:
            raise ValueError(
                f"max_buffered_bytes ({self.max_buffered_bytes:,}) is below max_body_bytes "
                f"({self.max_body_bytes:,}): a body of the largest allowed size could never be "
                "accepted; raise max_buffered_bytes or lower max_body_bytes"
            )
        return self

    @property
    def limits(self) -> RequestLimits:
        """The per-request bounds shared with the SageMaker handler."""
        return RequestLimits(
            max_body_bytes=self.max_body_bytes,
            max_pixels=self.max_pixels,
            max_aspect_ratio=self.max_aspect_ratio,
            max_instances=self.max_instances,
        )
