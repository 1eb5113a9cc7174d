"""The ASGI application: SageMaker's container contract plus a web page, with micro-batching.

Routes: ``GET /ping`` (health, 200 empty body), ``POST /invocations`` (predict), ``GET /info``
(model metadata), ``GET /`` (web page). Requests are parsed and answered by the same functions
as the SageMaker handler (:mod:`breedclf.serving._protocol`, :mod:`breedclf.serving._handler`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import TypeVar

import torch
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from breedclf.saved_model import Prediction, SavedModel, load_model
from breedclf.serving._batching import MicroBatcher
from breedclf.serving._config import ServingConfig
from breedclf.serving._handler import (
    predict_batch,
    prepare_for_serving,
    preprocess_request_image,
)
from breedclf.serving._protocol import (
    CUSTOM_ATTRIBUTES_HEADER,
    RequestError,
    RequestLimits,
    encode_error,
    encode_predictions,
    negotiate_accept,
    parse_body,
    parse_content_type,
    parse_custom_attributes,
    parse_top_k,
)
from breedclf.serving._threads import create_torch_pool, default_torch_threads

__all__ = ["create_app"]

R = TypeVar("R")

logger = logging.getLogger("breedclf.serving")

_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# A body declared or sent over the limit is read and discarded up to this multiple of the
# limit, so the client reliably receives the 413 instead of a reset connection.
_DRAIN_FACTOR = 4


def create_app(model: SavedModel | str | Path, config: ServingConfig | None = None) -> Starlette:
    """Build the inference server application for a saved model.

    Args:
        model: A loaded :class:`~breedclf.saved_model.SavedModel` or its directory.
        config: Batching and limits; defaults to :class:`ServingConfig` ().

    Returns:
        A Starlette (ASGI) application; run it with uvicorn, or use :func:`serve`.

    Example:
        >>> app = create_app("runs/demo/model")  # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=8080)  # doctest: +SKIP
    """
    saved = prepare_for_serving(
        model if isinstance(model, SavedModel) else load_model(model, device="auto")
    )
    cfg = config or ServingConfig()
    state = _ServerState(saved, cfg)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    routes = [
        Route("/ping", state.ping, methods=["GET"]),
        Route("/invocations", state.invocations, methods=["POST"]),
        Route("/info", state.info, methods=["GET"]),
        Route("/", state.page, methods=["GET"]),
        Route("/static/{name:str}", state.static, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    app.state.breedclf = state
    return app


class _Admission:
    """Bounds what requests in progress may hold at once: their number and their body bytes.

    Without it, every connection uvicorn accepts (up to 1024) could buffer a 6 MiB body. Used
    from the event loop only, so plain counters suffice.
    """

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.requests = 0
        self.bytes = 0

    @contextlib.contextmanager
    def request(self) -> Iterator[_Slot]:
        """Admit one request, or raise a 503 when ``max_requests`` are in progress."""
        if self.requests >= self.max_requests:
            raise RequestError(
                503,
                f"server busy: {self.requests} requests in progress, the limit is "
                f"{self.max_requests}; retry shortly",
            )
        self.requests += 1
        slot = _Slot(self)
        try:
            yield slot
        finally:
            slot.release()
            self.requests -= 1


class _Slot:
    """One admitted request's share of the body-byte budget."""

    def __init__(self, admission: _Admission) -> None:
        self._admission = admission
        self.reserved = 0

    def reserve(self, size: int) -> None:
        """Hold ``size`` more bytes, or raise a 503 when the budget has no room for them."""
        admission = self._admission
        if admission.bytes + size > admission.max_bytes:
            raise RequestError(
                503,
                f"server busy: request bodies in progress hold {admission.bytes / 2**20:.1f} "
                f"MiB of the {admission.max_bytes / 2**20:g} MiB allowed; retry shortly",
            )
        admission.bytes += size
        self.reserved += size

    def release(self) -> None:
        """Give back every byte held (the body has been decoded, or the request ended)."""
        self._admission.bytes -= self.reserved
        self.reserved = 0


class _ServerState:
    """The loaded model, the batcher and the request handlers bound to them."""

    def __init__(self, saved: SavedModel, config: ServingConfig) -> None:
        self.saved = saved
        self.config = config
        self.limits: RequestLimits = config.limits
        self.admission = _Admission(config.max_concurrency, config.max_buffered_bytes)
        self.forward_threads = config.torch_threads or default_torch_threads()
        self.batcher = MicroBatcher(
            self._predict,
            max_batch_size=config.max_batch_size,
            max_wait_s=config.max_wait_ms / 1000.0,
            max_queued=config.max_queued,
            torch_threads=self.forward_threads,
        )
        self._decoder: ThreadPoolExecutor | None = None
        self._static = _load_static()
        self._info: dict[str, object] = {
            "arch": saved.model.arch,
            "num_classes": len(saved.classes),
            "classes": saved.classes,
            "preprocess": saved.preprocess.model_dump(mode="json"),
            "metrics": saved.metadata.get("metrics", {}),
        }
        self._info_body = json.dumps(self._info).encode("utf-8")

    async def start(self) -> None:
        # Preprocessing one image is far too small to gain from parallelism, and parallel regions
        # started from several threads at once fight the forward pass for the same cores (seen:
        # 25 ms instead of 3 ms per image on a busy 2-core machine): decode threads use one.
        self._decoder = create_torch_pool(
            self.config.decode_threads, torch_threads=1, name="breedclf-decode"
        )
        await self.batcher.start()
        # Measured in the threads themselves (what a container's CPU quota should match), once:
        # every pool's threads exist from here on.
        loop = asyncio.get_running_loop()
        serving = {
            "forward_threads": await self.batcher.run_in_worker(torch.get_num_threads),
            "decode_threads": self.config.decode_threads,
            "threads_per_decode": await loop.run_in_executor(self._decoder, torch.get_num_threads),
            "max_batch_size": self.config.max_batch_size,
        }
        self._info_body = json.dumps({**self._info, "serving": serving}).encode("utf-8")
        if self.config.warmup:
            # One pass per batch size: oneDNN builds its kernels per input shape, so the first
            # request of each size would otherwise be slow (and memory would grow under load).
            size = self.saved.preprocess.input_size
            largest = self.config.max_batch_size
            sizes = range(1, largest + 1) if largest <= 16 else sorted({1, 2, 4, 8, 16, largest})
            blank = torch.zeros(1, 3, size, size)
            for n in sizes:
                await self.batcher.submit(blank.expand(n, -1, -1, -1), 1)
        logger.info(
            "serving %s (%d classes) on %s",
            self.saved.model.arch,
            len(self.saved.classes),
            self.saved.device,
        )

    async def stop(self) -> None:
        await self.batcher.stop()
        if self._decoder is not None:
            self._decoder.shutdown(wait=True)
            self._decoder = None

    def _predict(self, batch: torch.Tensor, top_k: int) -> list[list[Prediction]]:
        return predict_batch(self.saved, batch, top_k)

    async def ping(self, request: Request) -> Response:
        return Response(status_code=200, headers=_SECURITY_HEADERS)

    async def info(self, request: Request) -> Response:
        return Response(self._info_body, media_type="application/json", headers=_SECURITY_HEADERS)

    async def page(self, request: Request) -> Response:
        return self._static_response("index.html")

    async def static(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        if name == "index.html" or name not in self._static:
            raise HTTPException(404)
        return self._static_response(name)

    def _static_response(self, name: str) -> Response:
        body, media_type = self._static[name]
        return Response(
            body,
            media_type=media_type,
            headers={**_SECURITY_HEADERS, "Content-Security-Policy": _PAGE_CSP},
        )

    async def invocations(self, request: Request) -> Response:
        started = time.monotonic()
        deadline = started + self.config.request_timeout_s
        try:
            accept = negotiate_accept(request.headers.get("accept"))
            media_type = parse_content_type(request.headers.get("content-type"))
            top_k = self._top_k(request)
            with self.admission.request() as slot:
                with self.batcher.expect():
                    body = await self._read_body(request, deadline, slot)
                    # Alone: decode and predict in one hand-off to the worker, no batching wait.
                    solo = self.batcher.idle()
                    if not solo:
                        images, batch = await self._decode(body, media_type, deadline)
                        del body
                        slot.release()
                        queued = self.batcher.enqueue(images, top_k)
                if solo:
                    job = functools.partial(self._prepare_and_predict, body, media_type, top_k)
                    result, batch = await self._wait(self.batcher.run_solo(job), deadline)
                else:
                    result = await self._wait(queued, deadline)
        except RequestError as exc:
            # 408/413/503 may leave a body unread: the connection cannot carry another request.
            headers = {"Connection": "close"} if exc.status_code in {408, 413, 503} else {}
            if exc.status_code == 503:
                headers["Retry-After"] = "1"
            return _error_response(exc.status_code, exc.reason, headers)
        body = encode_predictions(result.predictions, batch=batch)
        headers = {**_SECURITY_HEADERS, "X-Breedclf-Batch-Size": str(result.batch_size)}
        return Response(body, media_type=accept, headers=headers)

    async def _wait(self, future: asyncio.Future[R], deadline: float) -> R:
        """Await ``future`` until the request's deadline, then answer 503."""
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):
                return await future
        except TimeoutError:
            future.cancel()
            raise RequestError(
                503,
                f"the request took longer than {self.config.request_timeout_s:g} s; the "
                "server is overloaded, retry later",
            ) from None

    def _top_k(self, request: Request) -> int:
        raw = request.query_params.get("top_k")
        if raw is None:
            attributes = parse_custom_attributes(request.headers.get(CUSTOM_ATTRIBUTES_HEADER))
            raw = attributes.get("top_k")
        return parse_top_k(raw)

    async def _read_body(self, request: Request, deadline: float, slot: _Slot) -> bytes:
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                declared_size = int(declared)
            except ValueError:
                raise RequestError(400, f"invalid Content-Length {declared[:30]!r}") from None
            if declared_size > limit * _DRAIN_FACTOR:
                raise RequestError(413, _too_large_message(declared_size, limit))
            # Held before the first byte arrives, so a full budget refuses at once.
            slot.reserve(min(max(declared_size, 0), limit))
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size <= limit:
                        if size > slot.reserved:  # chunked upload: held as it arrives
                            slot.reserve(size - slot.reserved)
                        chunks.append(chunk)
                    elif size > limit * _DRAIN_FACTOR:
                        break
        except TimeoutError:
            raise RequestError(
                408, f"the request body did not arrive within {self.config.request_timeout_s:g} s"
            ) from None
        if size > limit:
            raise RequestError(413, _too_large_message(size, limit))
        return b"".join(chunks)

    async def _decode(
        self, body: bytes, media_type: str, deadline: float
    ) -> tuple[torch.Tensor, bool]:
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._decoder, self._prepare, body, media_type)
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):
                return await job
        except TimeoutError:
            raise RequestError(
                503, f"decoding took longer than {self.config.request_timeout_s:g} s; retry later"
            ) from None

    def _prepare(self, body: bytes, media_type: str) -> tuple[torch.Tensor, bool]:
        parsed = parse_body(body, media_type, self.limits)
        tensors = [preprocess_request_image(self.saved, x, self.limits) for x in parsed.images]
        return torch.stack(tensors), parsed.batch

    def _prepare_and_predict(
        self, body: bytes, media_type: str, top_k: int
    ) -> tuple[list[list[Prediction]], bool]:
        """In the worker thread, for a request that found the server idle."""
        images, batch = self._prepare(body, media_type)
        return self._predict(images, top_k), batch


def _loop_time(deadline: float) -> float:
    """Convert a ``time.monotonic`` deadline to the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())


def _too_large_message(size: int, limit: int) -> str:
    return f"request body is {size:,} bytes; the limit is {limit:,} bytes ({limit / 2**20:g} MiB)"


def _error_response(
    status_code: int, reason: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        encode_error(status_code, reason),
        status_code=status_code,
        media_type="application/json",
        headers={**_SECURITY_HEADERS, **(headers or {})},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    reason = {
        404: f"no route {request.url.path!r}; use POST /invocations, GET /ping, GET /info or GET /",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return _error_response(exc.status_code, reason, dict(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_response(500, "internal server error; see the server log")


def _load_static() -> dict[str, tuple[bytes, str]]:
    """The web page's files, read once from the package."""
    folder = resources.files("breedclf.serving") / "static"
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
    out: dict[str, tuple[bytes, str]] = {}
    for entry in folder.iterdir():
        suffix = Path(entry.name).suffix
        if entry.is_file() and suffix in types:
            out[entry.name] = (entry.read_bytes(), types[suffix])
    return out
