"""Dynamic micro-batching: concurrent requests share one forward pass."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from breedclf.saved_model import Prediction
from breedclf.serving._protocol import RequestError
from breedclf.serving._threads import create_torch_pool, default_torch_threads

__all__ = ["BatchResult", "BatchStats", "MicroBatcher"]

PredictBatch = Callable[[torch.Tensor, int], list[list[Prediction]]]
T = TypeVar("T")


@dataclass(frozen=True)
class BatchResult:
    """The predictions of one request and the size of the forward pass that produced them."""

    predictions: list[list[Prediction]]
    batch_size: int


@dataclass
class _Item:
    images: torch.Tensor
    top_k: int
    future: asyncio.Future[BatchResult]


@dataclass
class BatchStats:
    """Counters of what the batcher did, for logs, tests and the benchmark."""

    batches: int = 0
    images: int = 0
    largest_batch: int = 0
    sizes: collections.Counter[int] = field(default_factory=collections.Counter)


class MicroBatcher:
    """Collect images from concurrent requests into batches for one worker thread.

    A single thread runs every forward pass, so the model is never used concurrently and
    the CPU threads of torch are not oversubscribed. While it runs, new requests queue up and
    form the next batch. A batch waits for stragglers only while some request is known to be
    on its way (:meth:`expect` — decoding its image), and never longer than ``max_wait_s``.
    A request that finds the worker idle skips the queue altogether (:meth:`idle`,
    :meth:`run_solo`): its whole job, decoding included, runs at once in the worker thread.

    Args:
        predict: ``predict(batch, top_k)`` → labelled top-k lists, run in the worker thread.
        max_batch_size: Most images in one forward pass (a single larger request runs alone).
        max_wait_s: Longest time a batch waits for more requests.
        max_queued: Most images waiting; beyond it requests get a 503 at once.
        torch_threads: Intra-op threads of the forward thread (``None``: torch's default, one
            per CPU the process sees).
    """

    def __init__(
        self,
        predict: PredictBatch,
        *,
        max_batch_size: int = 8,
        max_wait_s: float = 0.005,
        max_queued: int = 256,
        torch_threads: int | None = None,
    ) -> None:
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queued = max_queued
        self.torch_threads = torch_threads
        self.stats = BatchStats()
        self._pending: collections.deque[_Item] = collections.deque()
        self._queued_images = 0
        self._incoming = 0
        self._active = 0  # jobs handed to the worker thread and not finished
        self._wakeup = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Start the worker (call from the serving event loop)."""
        if self._worker is not None:
            return
        self._closing = False
        self._executor = create_torch_pool(
            1, torch_threads=self.torch_threads or default_torch_threads(), name="breedclf-forward"
        )
        self._worker = asyncio.create_task(self._run(), name="breedclf-batcher")

    async def stop(self) -> None:
        """Finish every queued request, then stop the worker thread."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker
            self._worker = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _run_batch(self, parts: list[torch.Tensor], top_k: int) -> list[list[Prediction]]:
        """In the forward thread: join the requests' images and predict.

        The join happens here rather than in the event loop so that the loop does no tensor
        work and all multi-threaded torch operations run in one thread (one OpenMP team).
        """
        batch = parts[0] if len(parts) == 1 else torch.cat(parts)
        return self._predict(batch, top_k)

    async def run_in_worker(self, func: Callable[[], T]) -> T:
        """Run ``func`` in the forward thread (after the batch running now, if any)."""
        if self._executor is None:
            raise RuntimeError("the batcher is not started")
        return await asyncio.get_running_loop().run_in_executor(self._executor, func)

    def idle(self) -> bool:
        """Whether the caller's request is the only one: none queued, none in the worker, and
        no other being received or decoded (call from within :meth:`expect`)."""
        return self._active == 0 and not self._pending and self._incoming <= 1

    def run_solo(
        self, job: Callable[[], tuple[list[list[Prediction]], T]]
    ) -> asyncio.Task[tuple[BatchResult, T]]:
        """Run a whole request in the worker thread now: ``job()`` decodes and predicts, and
        returns the predictions and anything else the caller needs back.

        For a request that found the server :meth:`idle`: no queue, no batching wait, and one
        thread hand-off instead of two. Requests arriving meanwhile queue and form the next
        batch. The worker is marked busy before this returns.

        Raises:
            RequestError: 503 when the server is shutting down.
        """
        if self._worker is None or self._closing:
            raise RequestError(503, "the server is shutting down; retry on another instance")
        self._active += 1
        return asyncio.get_running_loop().create_task(self._solo(job))

    async def _solo(
        self, job: Callable[[], tuple[list[list[Prediction]], T]]
    ) -> tuple[BatchResult, T]:
        try:
            predictions, extra = await asyncio.get_running_loop().run_in_executor(
                self._executor, job
            )
        finally:
            self._active -= 1
            self._wakeup.set()
        self._record(len(predictions))
        return BatchResult(predictions, len(predictions)), extra

    @contextlib.contextmanager
    def expect(self) -> Iterator[None]:
        """Mark a request as on its way (being decoded), so batches wait briefly for it."""
        self._incoming += 1
        try:
            yield
        finally:
            self._incoming -= 1

    async def submit(self, images: torch.Tensor, top_k: int) -> BatchResult:
        """Queue ``images`` (``[N, 3, H, W]``) and wait for their predictions.

        Raises:
            RequestError: 503 when the queue is full or the server is shutting down.
        """
        return await self.enqueue(images, top_k)

    def enqueue(self, images: torch.Tensor, top_k: int) -> asyncio.Future[BatchResult]:
        """Queue ``images`` and return the future of their predictions (call in the loop).

        Raises:
            RequestError: 503 when the queue is full or the server is shutting down.
        """
        if self._worker is None or self._closing:
            raise RequestError(503, "the server is shutting down; retry on another instance")
        if self._queued_images + len(images) > self.max_queued:
            raise RequestError(
                503, f"server busy: {self._queued_images} images already queued; retry shortly"
            )
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(images, top_k, future))
        self._queued_images += len(images)
        self._wakeup.set()
        return future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            items = await self._collect()
            live = [item for item in items if not item.future.done()]
            if not live:
                continue
            parts = [item.images for item in live]
            top_k = max(item.top_k for item in live)
            self._active += 1
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, parts, top_k)
            except Exception as exc:  # delivered to every waiting request
                for item in live:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            finally:
                self._active -= 1
            size = len(results)
            self._record(size)
            start = 0
            for item in live:
                n = len(item.images)
                if not item.future.done():
                    rows = [row[: item.top_k] for row in results[start : start + n]]
                    item.future.set_result(BatchResult(rows, size))
                start += n

    async def _collect(self) -> list[_Item]:
        """Take the next batch off the queue, waiting briefly for requests on their way."""
        items = [self._pop()]
        size = len(items[0].images)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch_size:
            if not self._pending:
                remaining = deadline - time.monotonic()
                if self._incoming == 0 or remaining <= 0 or self._closing:
                    break
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                continue
            if size + len(self._pending[0].images) > self.max_batch_size:
                break
            item = self._pop()
            items.append(item)
            size += len(item.images)
        return items

    def _pop(self) -> _Item:
        item = self._pending.popleft()
        self._queued_images -= len(item.images)
        return item

    def _record(self, size: int) -> None:
        stats = self.stats
        stats.batches += 1
        stats.images += size
        stats.largest_batch = max(stats.largest_batch, size)
        stats.sizes[size] += 1
