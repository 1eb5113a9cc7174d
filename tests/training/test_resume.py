"""A training process killed by SIGKILL mid-epoch resumes and ends exactly as an unbroken run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.training.conftest import epoch_records, textures_experiment


def _config(root: Path, out: Path) -> Path:
    return textures_experiment(
        root,
        out,
        **{
            "name": "resume-test",
            "data.image_size": 48,
            "data.num_workers": 1,
            "scheduler": {"name": "cosine", "warmup_epochs": 0.5},
        },
    )


def _train(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "breedclf.cli", "train", str(config), "--no-progress", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_kill_during_epoch_two_then_resume_matches_uninterrupted(
    textures_root: Path, tmp_path: Path
) -> None:
    reference_cfg = _config(textures_root, tmp_path / "reference")
    reference = _train(reference_cfg)

    killed_cfg = _config(textures_root, tmp_path / "killed")
    # Same experiment, only the output directory differs.
    a, b = yaml.safe_load(reference_cfg.read_text()), yaml.safe_load(killed_cfg.read_text())
    a.pop("output_dir"), b.pop("output_dir")
    assert a == b

    victim = _train(killed_cfg)
    checkpoint = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists():
        assert victim.poll() is None, victim.communicate()[0].decode()
        assert time.monotonic() < deadline, "no checkpoint after epoch 1"
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    # It died during epoch 2: one epoch recorded, no saved model.
    assert len(epoch_records(tmp_path / "killed")) == 1
    assert not (tmp_path / "killed" / "model").exists()

    resumed = _train(killed_cfg, "--resume")
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out.decode()
    assert "resumed from" in out.decode()
    ref_out, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, ref_out.decode()

    ref_epochs, resumed_epochs = (
        epoch_records(tmp_path / "reference"),
        epoch_records(tmp_path / "killed"),
    )
    assert [r["epoch"] for r in resumed_epochs] == [1, 2, 3]
    assert resumed_epochs == ref_epochs

    def final(run: str) -> dict[str, Any]:
        meta = json.loads((tmp_path / run / "model" / "breedclf.json").read_text())
        metrics: dict[str, Any] = meta["metrics"]
        return metrics

    assert final("killed") == final("reference")
    assert final("reference")["test"]["count"] == 45


def test_resume_without_checkpoint_is_a_clear_error(textures_root: Path, tmp_path: Path) -> None:
    config = _config(textures_root, tmp_path / "fresh")
    proc = subprocess.run(
        [sys.executable, "-m", "breedclf.cli", "train", str(config), "--resume"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "cannot resume: no checkpoint at" in proc.stderr
