"""The README's main job, run as a user runs it: ``breedclf demo`` (offline, real weights and
photographs), quiet under the debugger's default rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from breedclf.config import DEFAULT_DEBUGGER_RULES
from breedclf.saved_model import load_model


@pytest.mark.slow
def test_the_demo_fine_tunes_and_triggers_none_of_the_default_debugger_rules(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "breedclf", "demo", "-o", str(out), "--no-progress",
         "--no-compare"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "held-out test accuracy" in done.stdout
    test = json.loads((out / "eval-test.json").read_text())
    assert test["acc"] >= 0.9

    # The debugger ran by default, with the default rules (the pretrained model leaves out the
    # initialisation check), and nothing fired.
    statuses = json.loads((out / "debugger" / "statuses.json").read_text())
    expected = [r for r in DEFAULT_DEBUGGER_RULES if r != "poor_weight_initialization"]
    assert statuses == dict.fromkeys(expected, "NoIssuesFound")
    assert not (out / "debugger" / "findings.jsonl").exists()
    for rule in expected:
        assert f"debugger rule {rule}: NoIssuesFound" in done.stdout + done.stderr
    # The saved model predicts what the run tested.
    assert load_model(out / "model").classes == ["brick", "grass", "gravel"]
