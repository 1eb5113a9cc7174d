"""Data-parallel training: the process group torchrun starts, one writer, decisions agreed.

breedclf has no launcher of its own: ``torchrun`` (``python -m torch.distributed.run``) starts
one process per GPU (or several CPU processes) and sets the rendezvous environment; with
``training.distributed: auto`` each process joins the group here, NCCL on CUDA and gloo on CPU.
Outside torchrun nothing changes: the context is a single process (rank 0 of 1).

Every collective here is called by every rank at the same point of the run, or the job hangs;
the Trainer and Experiment are the only callers.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import distributed as dist
from torch import nn

from breedclf._device import resolve_device
from breedclf.errors import ConfigurationError

__all__ = [
    "DistributedContext",
    "DistributedMode",
    "all_reduce_sum",
    "barrier",
    "broadcast_flag",
    "broadcast_module",
    "broadcast_object",
    "current_context",
    "gather_states",
    "init_distributed",
    "process_device",
    "rank_seed",
    "shutdown_distributed",
]

log = logging.getLogger("breedclf.training")

DistributedMode = Literal["auto", "off"]
T = TypeVar("T")

_owned = False  # whether init_distributed created the process group (shutdown destroys it)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a data-parallel job.

    Attributes:
        rank: Global rank (0 is the one writer).
        world_size: Number of processes; 1 when not distributed.
        local_rank: Rank on this machine; selects the GPU (``cuda:local_rank``).

    Example:
        >>> DistributedContext().enabled
        False
        >>> DistributedContext(rank=1, world_size=2, local_rank=1).is_main
        False
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """More than one process: gradients, metrics and decisions are synchronised."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, shows progress and writes files."""
        return self.rank == 0

    def processes_per_machine(self, device: torch.device) -> int:
        """How many of the job's processes share this machine's cores (an estimate).

        One per GPU on CUDA (at most the GPUs this machine has); on CPU, all of them (CPU
        training across machines is rare).
        """
        if device.type == "cuda":
            return max(1, min(self.world_size, torch.cuda.device_count()))
        return self.world_size


def current_context(mode: DistributedMode = "auto") -> DistributedContext:
    """The context of the process group already set up (a single process if none or ``off``)."""
    if mode == "off" or not dist.is_available() or not dist.is_initialized():
        return DistributedContext()
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=dist.get_node_local_rank(fallback_rank=0),
    )


def init_distributed(mode: DistributedMode = "auto", device: str = "auto") -> DistributedContext:
    """Join the process group of a ``torchrun`` job (idempotent); a single process otherwise.

    With ``mode="auto"`` in a process that torchrun started, the group is initialised from
    torchrun's environment with NCCL when ``device`` resolves to CUDA (the process then uses
    ``cuda:LOCAL_RANK``) and gloo otherwise. A group that already exists (initialised by the
    caller) is used as it is. ``mode="off"`` trains every process on its own.

    Args:
        mode: The ``training.distributed`` setting.
        device: The ``training.device`` setting (chooses the backend).

    Raises:
        ConfigurationError: The device setting cannot give each process its own device.

    Example:
        >>> init_distributed("auto")  # not started by torchrun: one process
        DistributedContext(rank=0, world_size=1, local_rank=0)
    """
    global _owned
    if mode == "off" and dist.is_torchelastic_launched():
        log.warning(
            "started by torchrun with training.distributed=off: this process trains alone "
            "(every process trains the same model)"
        )
    if mode == "off" or not dist.is_available():
        return DistributedContext()
    if not dist.is_initialized():
        if not dist.is_torchelastic_launched():
            return DistributedContext()
        local_rank = dist.get_node_local_rank(fallback_rank=0)
        target = _device_for(device, local_rank)
        if target.type == "cuda":
            torch.cuda.set_device(target)
            dist.init_process_group(backend="nccl", device_id=target)
        else:
            dist.init_process_group(backend="gloo")
        _owned = True
        ctx = current_context()
        log.debug("joined the process group: rank %d of %d", ctx.rank, ctx.world_size)
    return current_context()


def shutdown_distributed() -> None:
    """Wait for every rank, then destroy the process group :func:`init_distributed` created."""
    global _owned
    if _owned and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _owned = False


def process_device(name: str, ctx: DistributedContext) -> torch.device:
    """This process's device: ``training.device`` resolved, one GPU per process under DDP."""
    if not ctx.enabled:
        return resolve_device(name)
    return _device_for(name, ctx.local_rank)


def _device_for(name: str, local_rank: int) -> torch.device:
    device = resolve_device(name)
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigurationError(
            f"training.device={name!r}: distributed training runs on CUDA (NCCL) or CPU (gloo), "
            f"not {device.type!r}; set training.device to 'cuda' or 'cpu'"
        )
    if device.index is not None:
        raise ConfigurationError(
            f"training.device={name!r}: under torchrun each process takes the GPU its LOCAL_RANK "
            "names; set training.device to 'auto' or 'cuda' (choose GPUs with "
            "CUDA_VISIBLE_DEVICES)"
        )
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigurationError(
            f"LOCAL_RANK={local_rank} but this machine has {count} GPU(s): start at most "
            f"{count} processes per machine (torchrun --nproc-per-node {count})"
        )
    return torch.device("cuda", local_rank)


def rank_seed(seed: int, rank: int, step: int) -> int:
    """A seed for rank ``rank``'s global RNG, a pure function of (seed, rank, step).

    Rank 0 of a fresh run uses ``seed`` itself (as a single process does); the other ranks,
    and ranks whose state a checkpoint lacks, are seeded from this.

    Example:
        >>> rank_seed(7, 1, 0) == rank_seed(7, 1, 0) != rank_seed(7, 2, 0)
        True
    """
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (one one-byte broadcast)."""
    tensor = torch.tensor([1 if flag else 0], dtype=torch.uint8, device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks, in place (it must live on the backend's device)."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(value: T) -> T:
    """Rank 0's picklable ``value`` on every rank."""
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[no-any-return]


def gather_states(value: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's ``value`` (tensors and plain values, as in a checkpoint), by rank.

    Sent as ``torch.save`` bytes and read back with ``weights_only=True``, like a checkpoint.
    """
    buffer = io.BytesIO()
    torch.save(value, buffer)
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, buffer.getvalue())
    return [torch.load(io.BytesIO(blob), weights_only=True) for blob in out]


def broadcast_module(module: nn.Module, *, buffers_only: bool = False) -> None:
    """Copy rank 0's parameters and buffers (or only its buffers) into ``module`` everywhere."""
    tensors = list(module.buffers()) if buffers_only else list(module.state_dict().values())
    with torch.no_grad():
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


def barrier() -> None:
    """Wait until every rank arrives."""
    dist.barrier()
