"""Data-parallel scaling: training images/s on 1 and on N processes, measured in one run.

Both sides are the same ``breedclf train`` of the same experiment (model, data, resolution,
per-process batch size, seed); the N-process side is ``breedclf train --nproc N`` (torchrun:
gloo on CPU, NCCL on GPUs). Throughput is the global number of training images of an epoch
over its wall time on rank 0 (``images_per_second`` in ``metrics.jsonl``); the first epoch is
a warm-up and not counted unless it is the only one. Scaling efficiency is
``images/s(N) / (N × images/s(1))``: 1.0 is linear.

Weak scaling, as users scale: each process keeps ``--batch-size``, so N processes take a
global batch N times larger in N times fewer steps per epoch.

Resources: on GPUs each process owns one GPU (N ≤ GPUs). On CPU the single process gets every
core and each of the N processes ``cores // N`` threads, so the comparison shares the same
cores: on a small CPU machine it measures DDP's overhead (gradient all-reduce over gloo,
process start), not a speed-up.

It also times the collective that makes every rank follow rank 0's ``should_stop`` (one
one-byte broadcast; the trainer runs it after every step only when a callback may stop
mid-epoch, such as the debugger) against the measured time of a training step.

Run: ``uv run python bench/ddp_scaling.py`` (``--help`` for options; ``--device cuda
--nproc 4`` on a 4-GPU machine). No network access is needed (the textures data and the
EfficientNet-Lite0 weights ship with the ``demo`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from breedclf.config import ExperimentConfig, dump_config, validate_config


def _cores() -> int:
    found = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return found or 1


def _config(args: argparse.Namespace, data_root: Path, out: Path) -> Path:
    dataset = "textures" if args.data_root is None else "imagefolder"
    config = validate_config(
        ExperimentConfig,
        {
            "name": f"ddp-scaling-{out.name}",
            "output_dir": str(out),
            "data": {
                "dataset": dataset,
                "root": str(data_root),
                "image_size": args.image_size,
                "num_workers": args.num_workers,
            },
            "model": {"name": args.model, "weights": args.weights},
            "optimizer": {"name": "adamw", "lr": 1e-3},
            "training": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "seed": 0,
                "device": args.device,
                "evaluate_test": False,
            },
        },
    )
    path = out.with_suffix(".yaml")
    dump_config(config, path)
    return path


def _train(config: Path, nproc: int, threads: int, timeout: float) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "breedclf", "train", str(config), "--no-progress"]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    print(f"  {nproc} process(es): {time.perf_counter() - started:.1f} s wall (with start-up)")
    out = Path(str(config).removesuffix(".yaml"))
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "epoch"]


def _throughput(records: list[dict[str, Any]]) -> tuple[float, float]:
    """(images/s, seconds per epoch) over the measured epochs."""
    measured = records[1:] or records
    images = sum(r["train"]["count"] for r in measured)
    seconds = sum(r["seconds"] for r in measured)
    return images / seconds, seconds / len(measured)


def _broadcast_cost(nproc: int, device: str, threads: int, timeout: float) -> float:
    """Seconds per ``broadcast_flag`` call between ``nproc`` torchrun processes."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={nproc}", __file__, "--broadcast-worker", "--device", device,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("broadcast_seconds="):
            return float(line.split("=", 1)[1])
    raise SystemExit(f"the broadcast timing failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def _broadcast_worker(device: str, calls: int = 500) -> None:
    from breedclf.training._distributed import (
        broadcast_flag,
        init_distributed,
        process_device,
        shutdown_distributed,
    )

    ctx = init_distributed("auto", device)
    target = process_device(device, ctx)
    for _ in range(50):  # warm-up (connections, NCCL communicators)
        broadcast_flag(False, target)
    started = time.perf_counter()
    for _ in range(calls):
        broadcast_flag(False, target)
    elapsed = (time.perf_counter() - started) / calls
    if ctx.is_main:
        print(f"broadcast_seconds={elapsed}", flush=True)
    shutdown_distributed()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--nproc", type=int, default=2, help="processes of the N side")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per process)")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="DEFAULT", help="DEFAULT, a file, or none")
    parser.add_argument("--data-root", type=Path, help="an ImageFolder root (default: textures)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="per process")
    parser.add_argument("--epochs", type=int, default=3, help="the first is a warm-up")
    parser.add_argument("--num-workers", default="auto")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per training run")
    parser.add_argument("--output", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--broadcast-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.broadcast_worker:
        _broadcast_worker(args.device)
        return
    if args.weights.lower() == "none":
        args.weights = None
    if args.num_workers != "auto":
        args.num_workers = int(args.num_workers)
    if args.device.startswith("cuda") and torch.cuda.device_count() < args.nproc:
        raise SystemExit(f"--nproc {args.nproc} needs as many GPUs ({torch.cuda.device_count()})")

    cores = _cores()
    one_threads = cores if args.device == "cpu" else max(1, cores // args.nproc)
    many_threads = max(1, cores // args.nproc)
    with tempfile.TemporaryDirectory(prefix="ddp-scaling-") as tmp:
        work = Path(tmp)
        data_root = args.data_root
        if data_root is None:
            from breedclf.data import write_textures

            data_root = write_textures(work / "textures")
        print(
            f"{args.model} at {args.image_size} px, batch {args.batch_size} per process, "
            f"{args.epochs} epochs on {args.device}; {platform.processor() or platform.machine()}"
            f", {cores} cores"
        )
        single = _train(_config(args, data_root, work / "one"), 1, one_threads, args.timeout)
        many = _train(
            _config(args, data_root, work / "many"), args.nproc, many_threads, args.timeout
        )
        one_rate, one_epoch = _throughput(single)
        many_rate, many_epoch = _throughput(many)
        broadcast = _broadcast_cost(args.nproc, args.device, many_threads, args.timeout)
    steps = many[-1]["train"]["count"] / (args.batch_size * args.nproc)
    step_seconds = many_epoch / max(1.0, steps)
    efficiency = many_rate / (args.nproc * one_rate)
    figures = {
        "device": args.device,
        "cores": cores,
        "nproc": args.nproc,
        "threads_per_process": {"1": one_threads, str(args.nproc): many_threads},
        "images_per_second": {"1": one_rate, str(args.nproc): many_rate},
        "speedup": many_rate / one_rate,
        "scaling_efficiency": efficiency,
        "stop_broadcast_seconds": broadcast,
        "stop_broadcast_share_of_step": broadcast / step_seconds,
    }
    print(f"1 process:      {one_rate:8.1f} images/s  ({one_epoch:.1f} s/epoch)")
    print(f"{args.nproc} processes:    {many_rate:8.1f} images/s  ({many_epoch:.1f} s/epoch)")
    print(f"speed-up {many_rate / one_rate:.2f}x, scaling efficiency {efficiency:.2f}")
    print(
        f"should_stop broadcast: {broadcast * 1e6:.0f} us per call = "
        f"{100 * broadcast / step_seconds:.2f} % of a {step_seconds * 1e3:.0f} ms step "
        "(paid per step only with a callback that may stop mid-epoch)"
    )
    if args.output is not None:
        args.output.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
