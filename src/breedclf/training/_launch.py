"""``breedclf train --nproc N``: hand the same command to torchrun on this machine."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from torch import distributed as dist

from breedclf.errors import ConfigurationError

__all__ = ["exec_torchrun", "torchrun_command"]


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The torchrun command that runs ``breedclf`` with ``argv`` (less ``--nproc``) N times.

    ``--standalone`` gives a single-machine rendezvous on a free port.

    Example:
        >>> command = torchrun_command(2, ["train", "exp.yaml", "--nproc", "2", "--resume"])
        >>> command[1:5]
        ['-m', 'torch.distributed.run', '--standalone', '--nproc-per-node=2']
        >>> command[5:]
        ['-m', 'breedclf', 'train', 'exp.yaml', '--resume']
    """
    args: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "breedclf",
        *args,
    ]


def exec_torchrun(nproc: int, argv: Sequence[str]) -> NoReturn:
    """Replace this process by torchrun running ``breedclf`` on ``nproc`` processes.

    Unless ``OMP_NUM_THREADS`` is set, each process gets ``cores // nproc`` threads.

    Raises:
        ConfigurationError: Already inside a torchrun job.
    """
    if dist.is_torchelastic_launched():
        raise ConfigurationError(
            "--nproc starts torchrun; this process was already started by torchrun (drop --nproc)"
        )
    command = torchrun_command(nproc, argv)
    # torchrun gives every process 1 thread unless told; CPU training wants the cores shared.
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        env["OMP_NUM_THREADS"] = str(max(1, (cores or 1) // nproc))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)
