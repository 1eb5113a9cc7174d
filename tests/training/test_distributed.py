"""Data-parallel training on real processes (torchrun, gloo on CPU).

The runs are shared between tests (each launch imports torch in every process): one
uninterrupted 2-process run, one killed and resumed on 2 and on 1 process, and two runs that
rank 0 stops. Every launch has a timeout: a rank waiting forever fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from breedclf import load_model
from breedclf.config import load_config, override
from breedclf.data import EpochSampler
from breedclf.data._loading import EpochBatchSampler
from breedclf.experiment import Experiment
from breedclf.training import read_checkpoint
from breedclf.training._launch import torchrun_command
from tests.training.conftest import epoch_records, textures_experiment

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 600  # seconds per launch; a hang fails instead of blocking the suite
HELPERS = "tests.training.ddp_helpers"
TRAIN, VALID, TEST = 180, 45, 45  # the textures splits


def _config(root: Path, out: Path, **changes: Any) -> Path:
    return textures_experiment(root, out, **{"name": "ddp-test", **changes})


def _start(config: Path, *args: str, nproc: int | None = 2) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "breedclf", "train", str(config), "--no-progress", *args]
    if nproc is not None:
        command += ["--nproc", str(nproc)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the whole process tree can be killed on a hang
    )


def _finish(proc: subprocess.Popen[str], timeout: float = TIMEOUT) -> tuple[int, str]:
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the job hung for {timeout} s:\n{output[-3000:]}")
    return proc.returncode, output


def _worker_pids(launcher: int) -> dict[int, int]:
    """The training processes torchrun started, by rank (from their environment)."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    ranks = {}
    for pid in map(int, children):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        for item in environ:
            if item.startswith(b"RANK="):
                ranks[int(item[5:])] = pid
    return ranks


@dataclass(frozen=True)
class Run:
    out: Path
    config: Path
    output: str


@pytest.fixture(scope="module")
def two_process_run(textures_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """``breedclf train CONFIG --nproc 2``, 3 epochs; every rank records the samples it saw."""
    base = tmp_path_factory.mktemp("ddp")
    out = base / "run"
    config = _config(
        textures_root,
        out,
        callbacks=[{"name": "record_inputs", "params": {"directory": str(base / "seen")}}],
    )
    code, output = _finish(_start(config, "--import", HELPERS))
    assert code == 0, output[-3000:]
    return Run(out, config, output)


# ------------------------------------------------------------------------- one set of outputs


@pytest.mark.slow
def test_two_processes_write_one_set_of_outputs(two_process_run: Run, textures_root: Path) -> None:
    out, output = two_process_run.out, two_process_run.output
    for epoch in (1, 2, 3):
        for split in ("train", "valid"):
            assert output.count(f"epoch={epoch} split={split} ") == 1, output[-3000:]
    assert output.count("split=test ") == 1
    assert output.count("model saved to:") == 1
    assert output.count("wrote the training report") == 1  # rank 0 only
    assert (out / "report.html").is_file()
    records = epoch_records(out)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    # Sums over both ranks: every sample once (the training split loses no batch here).
    assert all(r["valid"]["count"] == VALID for r in records)
    assert all(r["train"]["count"] == TRAIN for r in records)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "best.safetensors",
        "last.ckpt",
        "splits.json",
    ]
    state = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert state["distributed"]["world_size"] == 2
    assert len(state["distributed"]["rng"]) == 2
    assert not any(key.startswith("module.") for key in state["model"])
    valid = json.loads((out / "eval-valid.json").read_text())
    assert valid["count"] == VALID
    assert sum(map(sum, valid["confusion"])) == VALID
    assert len(valid["per_class_acc"]) == 3
    assert json.loads((out / "eval-test.json").read_text())["count"] == TEST

    model = load_model(out / "model")
    assert model.classes == ["brick", "grass", "gravel"]
    image = Image.open(next((textures_root / "test" / "grass").iterdir()))
    (top, *_) = model.predict(image, top_k=3)
    assert top["label"] in model.classes
    assert top["label"] == model.classes[top["index"]]


# ---------------------------------------------------------------------------- sample order


@pytest.mark.parametrize("size", [0, 1, 5, 31, 32, 33, 45, 180])
@pytest.mark.parametrize("replicas", [1, 2, 3])
@pytest.mark.parametrize("train", [True, False])
def test_sharded_batches_keep_the_global_order(size: int, replicas: int, train: bool) -> None:
    sampler = EpochSampler(size, seed=11, shuffle=train)
    sampler.set_epoch(3)
    per_rank = [
        list(EpochBatchSampler(sampler, 4, drop_single_last=train, rank=r, num_replicas=replicas))
        for r in range(replicas)
    ]
    steps = max(map(len, per_rank), default=0)
    order = [item for k in range(steps) for batches in per_rank if k < len(batches)
             for item in batches[k]]  # fmt: skip
    assert order == list(sampler)[: len(order)]
    if train:  # every rank takes the same number of optimizer steps
        assert len({len(batches) for batches in per_rank}) == 1
    else:  # evaluation: every sample exactly once
        assert len(order) == size


@pytest.mark.slow
def test_two_processes_see_the_global_order_of_one(two_process_run: Run) -> None:
    """Step k of 2 processes × 16 is step k of 1 process × 32: same samples, same augmentation."""
    seen = two_process_run.out.parent / "seen"
    ranks = [json.loads((seen / f"rank{r}.json").read_text()) for r in (0, 1)]
    config = override(
        load_config(two_process_run.config),
        {"training.batch_size": 32, "training.distributed": "off", "callbacks": []},
    )
    loader = Experiment(config, progress=False).dataloader("train")
    for epoch in ("1", "2", "3"):
        loader.batch_sampler.set_epoch(int(epoch))  # type: ignore[union-attr]
        single = [
            torch.stack([b.inputs.double().flatten(1).sum(1), b.targets.double()], 1)
            for b in loader
        ]
        assert len(ranks[0][epoch]) == len(ranks[1][epoch]) == len(single)
        for step, expected in enumerate(single):
            both = torch.tensor(ranks[0][epoch][step] + ranks[1][epoch][step], dtype=torch.float64)
            torch.testing.assert_close(both, expected)


# -------------------------------------------------------------------------- failure, resume


@pytest.mark.slow
def test_a_killed_rank_fails_the_job_and_resume_finishes(
    two_process_run: Run, textures_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    config = _config(textures_root, out)
    job = _start(config)
    checkpoint = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + TIMEOUT
    while not checkpoint.exists():
        assert job.poll() is None, _finish(job)[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint after epoch 1"
        time.sleep(0.05)
    os.kill(_worker_pids(job.pid)[1], signal.SIGKILL)
    code, output = _finish(job)
    assert code != 0
    assert "ChildFailedError" in output and "Signal 9 (SIGKILL)" in output, output[-3000:]
    assert len(epoch_records(out)) == 1
    assert not (out / "model").exists()

    # The same checkpoint, resumed on 2 processes and (a copy) on 1, at the same time.
    single_out = tmp_path / "single"
    shutil.copytree(out, single_out)
    single_config = _config(textures_root, single_out)
    resumed = _start(config, "--resume")
    single = _start(single_config, "--resume", nproc=None)
    (code, output), (single_code, single_output) = _finish(resumed), _finish(single)
    assert code == 0, output[-3000:]
    assert single_code == 0, single_output[-3000:]

    # On 2 processes: exactly the uninterrupted 2-process run.
    assert epoch_records(out) == epoch_records(two_process_run.out)
    # On 1 process: same epochs, the schedule at the same point, not bit-identical.
    assert "resuming a checkpoint of 2 process(es) on 1" in single_output
    reference, records = epoch_records(two_process_run.out), epoch_records(single_out)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[0] == reference[0]
    for mine, theirs in zip(records[1:], reference[1:], strict=True):
        assert mine["lr"] == pytest.approx(theirs["lr"], rel=1e-6)
        assert mine["train"]["count"] == theirs["train"]["count"] == TRAIN
        assert mine["valid"]["count"] == VALID
    steps_two, steps_one = -(-TRAIN // 32), -(-TRAIN // 16)  # no batch dropped at 180 images
    state = read_checkpoint(single_out / "checkpoints" / "last.ckpt")
    assert state["trainer"]["global_step"] == steps_two + 2 * steps_one
    assert state["distributed"]["world_size"] == 1
    assert (single_out / "model" / "model.safetensors").is_file()


# ------------------------------------------------------------------------ rank 0's decisions


@pytest.mark.slow
def test_rank_zero_stops_every_rank(textures_root: Path, tmp_path: Path) -> None:
    """Early stopping (epoch end) and a debugger stop_training (mid-epoch) decided on rank 0."""
    early = _config(
        textures_root,
        tmp_path / "early",
        **{
            "training.epochs": 5,
            "training.evaluate_test": False,
            "training.early_stopping": {"patience": 1, "min_delta": 1.0},
        },
    )
    broken = _config(
        textures_root,
        tmp_path / "broken",
        **{
            "model.weights": None,
            "optimizer.lr": 50.0,
            "training.batch_size": 8,
            "training.evaluate_test": False,
            "debugger": {"default_action": "stop_training"},
        },
    )
    jobs = [_start(early), _start(broken)]
    (early_code, early_output), (broken_code, broken_output) = map(_finish, jobs)
    assert early_code == 0, early_output[-3000:]
    assert broken_code == 0, broken_output[-3000:]

    # Accuracy cannot improve by 1.0: epoch 2 is the last, on both ranks.
    assert [r["epoch"] for r in epoch_records(tmp_path / "early")] == [1, 2]
    assert early_output.count("early stopping:") == 1
    assert (tmp_path / "early" / "model" / "model.safetensors").is_file()

    # The Debugger runs on rank 0 only; its stop ended epoch 1 early on both ranks.
    (record,) = epoch_records(tmp_path / "broken")
    assert record["train"]["count"] < TRAIN
    assert "asks to stop training" in broken_output
    state = read_checkpoint(tmp_path / "broken" / "checkpoints" / "last.ckpt")
    assert state["trainer"]["should_stop"] is True
    assert 0 < state["trainer"]["global_step"] < -(-TRAIN // 16)
    assert (tmp_path / "broken" / "model" / "model.safetensors").is_file()


def test_nproc_hands_the_command_to_torchrun() -> None:
    command = torchrun_command(4, ["train", "exp.yaml", "--nproc=4", "--set", "a=1"])
    assert command[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node=4"]  # fmt: skip
    assert command[5:] == ["-m", "breedclf", "train", "exp.yaml", "--set", "a=1"]


def test_nproc_refuses_a_config_that_is_not_distributed(
    textures_root: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from breedclf.cli import app

    config = _config(textures_root, tmp_path / "off", **{"training.distributed": "off"})
    result = CliRunner().invoke(app, ["train", str(config), "--nproc", "2"])
    assert result.exit_code == 2
    assert "--nproc needs training.distributed: auto" in result.output
    assert not (tmp_path / "off").exists()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_two_gpus_with_nccl_sync_batchnorm_and_amp(textures_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpus"
    config = _config(
        textures_root,
        out,
        **{
            "training.epochs": 2,
            "training.device": "cuda",
            "training.amp": "auto",
            "training.sync_batchnorm": True,
        },
    )
    code, output = _finish(_start(config))
    assert code == 0, output[-3000:]
    records = epoch_records(out)
    assert [r["valid"]["count"] for r in records] == [VALID, VALID]
    assert json.loads((out / "eval-test.json").read_text())["count"] == TEST
    assert (out / "model" / "model.safetensors").is_file()
