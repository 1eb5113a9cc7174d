"""The system monitor: a background thread sampling CPU, memory, I/O, network and GPUs."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from breedclf.profiler._data import SYSTEM_FILE, SystemSample, profiler_path
from breedclf.training.callbacks.callback import Callback

if TYPE_CHECKING:
    from breedclf.training import Trainer

__all__ = ["SystemMonitor", "SystemSampler"]

log = logging.getLogger("breedclf.profiler")


class _Gpus:
    """NVML handles of the machine's NVIDIA GPUs (none when the driver is absent)."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # no driver / no libnvidia-ml: a machine without NVIDIA GPUs
            return
        self._nvml = pynvml
        try:
            count = pynvml.nvmlDeviceGetCount()
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except pynvml.NVMLError as exc:
            log.warning("profiler: NVML found no usable GPU (%s)", exc)
            self.close()

    def sample(self) -> list[tuple[str, str, float]]:
        """``(name, dimension, value)`` per GPU: utilisation and memory used, in percent."""
        out: list[tuple[str, str, float]] = []
        for i, handle in enumerate(self.handles):
            try:
                util = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            except self._nvml.NVMLError:
                continue  # a GPU that stopped answering is skipped for this sample
            out.append((f"gpu{i}", "GPUUtilization", float(util.gpu)))
            used = 100.0 * float(memory.used) / max(float(memory.total), 1.0)
            out.append((f"gpu{i}", "GPUMemoryUtilization", used))
        return out

    def close(self) -> None:
        """Release NVML."""
        if self.handles or hasattr(self, "_nvml"):
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
        self.handles = []


class SystemSampler:
    """Samples the machine every ``interval`` seconds into ``path`` (JSON lines) on a thread.

    Each sample writes one line per metric in SageMaker's shape (``Type, Name, Dimension,
    Value, NodeId, Timestamp``): ``CPUUtilization`` per core (``cpu0`` ...), ``I/OWaitPercentage``
    and ``MemoryUsedPercent`` of the node, disk ``ReadBytesPerSecond``/``WriteBytesPerSecond``,
    network ``ReceivedBytesPerSecond``/``SentBytesPerSecond`` and, per NVIDIA GPU,
    ``GPUUtilization`` and ``GPUMemoryUtilization`` (memory used, percent). Lines are flushed
    after every sample, so a process killed with ``kill -9`` keeps what was sampled.

    Args:
        path: The JSONL file (appended to).
        interval: Seconds between samples (SageMaker's default: 0.5).
        node: ``NodeId`` (default: the host name).

    Example:
        >>> import tempfile, time
        >>> path = Path(tempfile.mkdtemp()) / "system.jsonl"
        >>> with SystemSampler(path, interval=0.05):
        ...     time.sleep(0.2)
        >>> json.loads(path.read_text().splitlines()[0])["Dimension"]
        'CPUUtilization'
    """

    def __init__(self, path: str | Path, *, interval: float = 0.5, node: str | None = None) -> None:
        self.path = Path(path)
        self.interval = interval
        self.node = node or socket.gethostname()
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gpus: _Gpus | None = None

    @property
    def running(self) -> bool:
        """Whether the sampling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start sampling (a no-op when already running)."""
        if self.running:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._gpus = _Gpus()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="breedclf-system-monitor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread (it writes one last sample)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 4 * self.interval))
            self._thread = None
        if self._gpus is not None:
            self._gpus.close()
            self._gpus = None

    def __enter__(self) -> SystemSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        import psutil

        # cpu_percent / cpu_times_percent measure since their previous call in the same thread
        # (psutil keeps that state per thread): prime them here.
        psutil.cpu_percent(percpu=True)
        psutil.cpu_times_percent()
        disk, net = psutil.disk_io_counters(), psutil.net_io_counters()
        last = time.monotonic()
        with open(self.path, "a", encoding="utf-8") as fh:
            stopping = False
            while not stopping:
                stopping = self._stop.wait(self.interval)
                try:
                    now = time.monotonic()
                    lines, disk, net = self._sample(psutil, disk, net, now - last)
                    last = now
                    fh.write("".join(json.dumps(line) + "\n" for line in lines))
                    fh.flush()
                    self.samples += 1
                except Exception:  # a failed sample must never take training down
                    log.exception("profiler: system sample failed")
            os.fsync(fh.fileno())

    def _sample(
        self, psutil: Any, disk: Any, net: Any, seconds: float
    ) -> tuple[list[dict[str, Any]], Any, Any]:
        stamp = time.time()
        values: list[tuple[str, str, str, float]] = [
            ("cpu", f"cpu{i}", "CPUUtilization", float(v))
            for i, v in enumerate(psutil.cpu_percent(percpu=True))
        ]
        times = psutil.cpu_times_percent()
        values.append(("cpu", "cpu", "I/OWaitPercentage", float(getattr(times, "iowait", 0.0))))
        values.append(
            ("memory", "memory", "MemoryUsedPercent", float(psutil.virtual_memory().percent))
        )
        seconds = max(seconds, 1e-6)
        new_disk, new_net = psutil.disk_io_counters(), psutil.net_io_counters()
        rates = [
            (disk, new_disk, "disk", (("read_bytes", "Read"), ("write_bytes", "Write"))),
            (net, new_net, "network", (("bytes_recv", "Received"), ("bytes_sent", "Sent"))),
        ]
        for old, new, kind, counters in rates:
            if old is None or new is None:
                continue  # no disks / network interfaces visible (some containers)
            for attr, word in counters:
                rate = (getattr(new, attr) - getattr(old, attr)) / seconds
                values.append((kind, kind, f"{word}BytesPerSecond", rate))
        if self._gpus is not None:
            values += [("gpu", name, dim, v) for name, dim, v in self._gpus.sample()]
        lines = [
            SystemSample(kind, name, dim, round(value, 3), self.node, stamp).to_json()
            for kind, name, dim, value in values
        ]
        return lines, new_disk, new_net


class SystemMonitor(Callback):
    """Samples the machine while ``fit`` runs (see :class:`SystemSampler`).

    Starts at ``on_fit_start`` and stops in ``teardown``, which the trainer calls whether
    training finished or raised. Writes ``<run_dir>/profiler/system.jsonl`` unless given a
    path. One monitor per machine is enough: under distributed training, run it on each node's
    local rank 0 (its samples carry the node's ``NodeId``).

    Args:
        interval: Seconds between samples.
        path: The JSONL file (default ``<run_dir>/profiler/system.jsonl``).
    """

    #: Every node samples its own machine (local rank 0 of each node; see the class docstring).
    rank_zero_only: ClassVar[bool] = False
    order = -1000  # start before, stop after, everything else

    def __init__(self, *, interval: float = 0.5, path: str | Path | None = None) -> None:
        self.interval = interval
        self.path = Path(path) if path is not None else None
        self.sampler: SystemSampler | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        """Start the sampling thread (under torchrun, on each machine's local rank 0 only)."""
        if trainer.distributed.local_rank != 0:
            return  # another process of this machine samples it
        path = profiler_path(trainer, self.path, SYSTEM_FILE, "system metrics")
        if path is None:
            return
        self.sampler = SystemSampler(path, interval=self.interval)
        self.sampler.start()

    def teardown(self, trainer: Trainer) -> None:
        """Stop the thread (also after an exception)."""
        if self.sampler is not None:
            self.sampler.stop()
