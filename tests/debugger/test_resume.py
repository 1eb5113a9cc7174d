"""Findings survive ``kill -9`` of ``breedclf train`` (append-only, fsynced lines) and
``--resume`` continues the rules' state: no finding is made twice for a step before the
checkpoint, and a rule that fired only before the crash still ends ``IssuesFound``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from breedclf.config import ExperimentConfig, dump_config, validate_config
from breedclf.debugger import ISSUES_FOUND, read_findings, read_statuses

EPOCHS = 2


def _config(root: Path, out: Path) -> Path:
    config = validate_config(
        ExperimentConfig,
        {
            "name": "debugger-resume",
            "output_dir": str(out),
            "data": {"dataset": "textures", "root": str(root), "image_size": 32, "num_workers": 0},
            "model": {"name": "efficientnet_lite0", "weights": None},
            "training": {"epochs": EPOCHS, "batch_size": 32, "seed": 5, "device": "cpu"},
            "debugger": {
                "save_interval": 1,
                "rules": [
                    # Every gradient's mean |g| is below 1e3: fires at every step (one finding).
                    {"name": "vanishing_gradient", "params": {"threshold": 1e3}},
                    # Only evaluates the first 2 steps, and any variance spread exceeds 1x: it
                    # fires in epoch 1 only, so its final status must come from the checkpoint.
                    {"name": "poor_weight_initialization", "params": {"threshold": 1.0,
                                                                      "steps": 2}},
                ],
            },
        },
    )  # fmt: skip
    path = out.with_suffix(".yaml")
    dump_config(config, path)
    return path


def _train(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "breedclf.cli", "train", str(config), "--no-progress", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True) if path.is_file() else []


def _keys(lines: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(d["rule"], d["mode"], d["step"]) for d in lines]


def test_findings_survive_kill_and_resume_continues_rule_state(
    textures_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = _config(textures_root, out)
    findings_file = out / "debugger" / "findings.jsonl"
    checkpoint = out / "checkpoints" / "last.ckpt"

    victim = _train(config)
    deadline = time.monotonic() + 300
    first_finding_before_checkpoint = None
    while not checkpoint.exists():
        if first_finding_before_checkpoint is None and _lines(findings_file):
            first_finding_before_checkpoint = True
        assert victim.poll() is None, victim.communicate()[0].decode()
        assert time.monotonic() < deadline, "no checkpoint after epoch 1"
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert first_finding_before_checkpoint, "findings are written as found, not at the end"
    assert not (out / "model").exists()

    # Intact after the kill: every complete line parses (only a line cut mid-write may be torn).
    lines = _lines(findings_file)
    complete = [json.loads(line) for line in lines if line.endswith("\n")]
    assert len(complete) >= len(lines) - 1
    killed = _keys(complete)
    steps_before_kill = sorted(s for r, _, s in killed if r == "vanishing_gradient")
    assert steps_before_kill[:2] == [1, 2]
    assert ("poor_weight_initialization", "train", 1) in killed
    assert ("poor_weight_initialization", "train", 2) in killed

    resumed = _train(config, "--resume")
    log, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, log.decode()
    assert "resumed from" in log.decode()

    # The resumed attempt opened the trial at the checkpoint's step.
    starts = [
        json.loads(line)
        for line in _lines(out / "debugger" / "trial.jsonl")
        if '"event": "start"' in line
    ]
    assert [s["global_step"] for s in starts] == [0, starts[-1]["global_step"]]
    resumed_at = starts[-1]["global_step"]
    steps_per_epoch = resumed_at  # the checkpoint is written at the end of epoch 1
    assert steps_per_epoch > 2

    raw = _keys([json.loads(line) for line in _lines(findings_file)])
    counts = Counter(raw)
    # Steps up to the checkpoint were found once, by the first attempt only.
    assert {k: n for k, n in counts.items() if k[2] <= resumed_at and n != 1} == {}
    # The rules' state went on: poor_weight_initialization (steps <= 2) did not re-fire.
    assert [k for k in raw if k[0] == "poor_weight_initialization"] == [
        ("poor_weight_initialization", "train", 1),
        ("poor_weight_initialization", "train", 2),
    ]
    # Every step of the whole run found once in the run's findings (re-found steps after the
    # checkpoint are listed once).
    unique = read_findings(out)
    vanishing = [f.step for f in unique if f.rule == "vanishing_gradient"]
    assert vanishing == list(range(1, EPOCHS * steps_per_epoch + 1))

    statuses = {"vanishing_gradient": ISSUES_FOUND, "poor_weight_initialization": ISSUES_FOUND}
    assert read_statuses(out) == statuses
    meta = json.loads((out / "model" / "breedclf.json").read_text())
    assert meta["metrics"]["debugger"] == statuses
    assert "poor_weight_initialization: IssuesFound" in log.decode()
