"""Settings of the local inference server."""

from __future__ import annotations

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from breedclf.config import BaseConfig
from breedclf.serving._protocol import RequestLimits

__all__ = ["ServingConfig"]


class ServingConfig(BaseConfig):
    """How the HTTP server batches and bounds requests.

    Attributes:
        max_batch_size: Most images in one forward pass.
        max_wait_ms: Longest time a batch waits for requests that are already arriving; a lone
            request never waits.
        request_timeout_s: Longest time one request may take, body upload included (SageMaker
            endpoints must answer within 60 s).
        max_body_bytes: Largest request body (SageMaker's real-time limit is 6 MiB).
        max_pixels: Largest image decoded, in pixels (decompression bombs).
        max_aspect_ratio: Longest / shortest side allowed.
        max_instances: Most images in one JSON ``instances`` request.
        max_queued: Most images waiting for the model; more get a 503 at once.
        decode_threads: Threads decoding and preprocessing images beside the forward thread.
        torch_threads: Intra-op threads of the forward pass; ``None`` keeps torch's default (one
            per CPU the process sees — set it to the container's CPU quota when that is lower).
        warmup: Run one forward pass at start-up so the first request is not slow.
    """

    max_batch_size: PositiveInt = 8
    max_wait_ms: NonNegativeFloat = 5.0
    request_timeout_s: PositiveFloat = 30.0
    max_body_bytes: PositiveInt = 6 * 1024 * 1024
    max_pixels: PositiveInt = 40_000_000
    max_aspect_ratio: float = Field(default=30.0, ge=1.0)
    max_instances: PositiveInt = 32
    max_queued: PositiveInt = 256
    decode_threads: PositiveInt = 2
    torch_threads: PositiveInt | None = None
    warmup: bool = True

    @property
    def limits(self) -> RequestLimits:
        """The per-request bounds shared with the SageMaker handler."""
        return RequestLimits(
            max_body_bytes=self.max_body_bytes,
            max_pixels=self.max_pixels,
            max_aspect_ratio=self.max_aspect_ratio,
            max_instances=self.max_instances,
        )
