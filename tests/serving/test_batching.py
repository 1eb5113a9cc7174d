"""The micro-batcher: a lone request skips the queue; requests that queue share a batch."""

from __future__ import annotations

import asyncio
import threading

import torch

from breedclf.saved_model import Prediction
from breedclf.serving import MicroBatcher


def _predict(batch: torch.Tensor, top_k: int) -> list[list[Prediction]]:
    row = [Prediction(label="x", index=0, probability=1.0)]
    return [row] * len(batch)


def test_a_lone_request_runs_at_once_in_the_worker_and_later_ones_batch_behind_it() -> None:
    async def scenario() -> None:
        batcher = MicroBatcher(_predict, max_batch_size=8, max_wait_s=0.0)
        await batcher.start()
        release = threading.Event()
        threads: list[str] = []

        def job() -> tuple[list[list[Prediction]], str]:
            threads.append(threading.current_thread().name)
            release.wait(30)  # hold the worker while others arrive
            return _predict(torch.zeros(1, 3, 4, 4), 1), "batch-flag"

        try:
            with batcher.expect():
                assert batcher.idle()
                solo = batcher.run_solo(job)
            assert not batcher.idle()  # marked busy before any await
            first = batcher.enqueue(torch.zeros(1, 3, 4, 4), 1)
            second = batcher.enqueue(torch.zeros(2, 3, 4, 4), 1)
            release.set()
            result, flag = await solo
            queued = await asyncio.gather(first, second)
        finally:
            release.set()
            await batcher.stop()
        assert (result.batch_size, flag) == (1, "batch-flag")
        assert threads[0].startswith("breedclf-forward")
        assert [r.batch_size for r in queued] == [3, 3]
        assert [len(r.predictions) for r in queued] == [1, 2]
        assert batcher.stats.sizes == {1: 1, 3: 1}

    asyncio.run(scenario())
