"""Worker threads whose torch intra-op thread count is set per pool, without leaking.

``torch.set_num_threads`` looks per-thread but is not quite: each thread reads a process-wide
value once, on its first parallel operation, and every call also overwrites that value. A decode
thread that set 1 thread therefore made any thread started after it — the forward thread
included, when it started late — run single-threaded. Pools made here pin every worker before
use and then put the process-wide value back.
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["create_torch_pool", "default_torch_threads"]


@functools.cache
def default_torch_threads() -> int:
    """torch's intra-op thread count for threads that set none (read once, at first use)."""
    return torch.get_num_threads()


def create_torch_pool(workers: int, *, torch_threads: int, name: str) -> ThreadPoolExecutor:
    """A pool of ``workers`` started threads, each running torch ops on ``torch_threads`` threads.

    Args:
        workers: Threads in the pool; all are started before this returns.
        torch_threads: Intra-op threads of each worker's torch operations.
        name: Thread name prefix (shows in ``py-spy`` and logs).
    """
    default = default_torch_threads()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    # Each worker blocks until all exist, so the pool starts exactly ``workers`` threads now.
    started = threading.Barrier(workers)

    def pin() -> None:
        torch.get_num_threads()  # the one read of the process-wide value, done before the set
        torch.set_num_threads(torch_threads)
        started.wait()

    for future in [pool.submit(pin) for _ in range(workers)]:
        future.result()
    _reset_process_default(default)
    return pool


def _reset_process_default(threads: int) -> None:
    """Put the process-wide value back from a throwaway thread, so no live thread changes."""

    def reset() -> None:
        torch.get_num_threads()
        torch.set_num_threads(threads)

    thread = threading.Thread(target=reset, name="breedclf-torch-threads")
    thread.start()
    thread.join()
