"""smdebug's own hook, for real: in an environment with the ``smdebug`` extra (its own uv
environment: the extra conflicts with ``aws``), a 1-epoch ``breedclf train`` with
``debugger.smdebug_config`` writes tensors that ``smdebug.trials.create_trial`` reads back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from breedclf.config import ExperimentConfig, dump_config, validate_config
from breedclf.debugger import load_trial, smdebug_available
from breedclf.errors import MissingDependencyError
from breedclf.experiment import Experiment

REPO = Path(__file__).resolve().parents[2]
BATCH = 32

# Runs in the smdebug environment: what smdebug's own trial reader sees.
READ_BACK = """
import json, sys
from smdebug import modes
from smdebug.trials import create_trial

trial = create_trial(sys.argv[1])
losses = trial.tensor_names(collection="losses")
loss = trial.tensor(losses[0])
print("RESULT " + json.dumps({
    "train_steps": trial.steps(mode=modes.TRAIN),
    "eval_steps": trial.steps(mode=modes.EVAL),
    "losses": losses,
    "train_loss": [float(loss.value(s, mode=modes.TRAIN)) for s in trial.steps(mode=modes.TRAIN)],
    "gradients": trial.tensor_names(collection="gradients"),
    "weights": trial.tensor_names(collection="weights"),
}))
"""


def _run(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def _smdebug_python(root: Path) -> Path:
    """A venv with this project and the smdebug extra at the locked versions, or a skip."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed: cannot create the smdebug environment")
    requirements = root / "requirements.txt"
    steps: list[list[str | Path]] = [
        [uv, "export", "--locked", "--extra", "smdebug", "--no-dev", "--no-hashes",
         "--no-emit-project", "--quiet", "-o", requirements],
        [uv, "venv", "--quiet", "--python", sys.executable, root / "venv"],
        [uv, "pip", "install", "--quiet", "--python", root / "venv" / "bin" / "python",
         "-r", requirements, "-e", f"{REPO}[smdebug]"],
    ]  # fmt: skip
    for step in steps:
        done = _run(*step)
        if done.returncode != 0:
            pytest.skip(f"cannot create the smdebug environment ({step[1]}): {done.stderr[-500:]}")
    return root / "venv" / "bin" / "python"


@pytest.mark.slow
def test_smdebug_hook_writes_a_trial_smdebug_reads(textures_root: Path, tmp_path: Path) -> None:
    python = _smdebug_python(tmp_path / "env")

    tensors = tmp_path / "smdebug"
    hook_config = tmp_path / "debughookconfig.json"
    # The file SageMaker writes for a job with Debugger (keys of smdebug's json_config).
    hook_config.write_text(
        json.dumps(
            {
                "LocalPath": str(tensors),
                "HookParameters": {"save_interval": "1"},
                "CollectionConfigurations": [
                    {"CollectionName": "losses"},
                    {"CollectionName": "gradients"},
                    {"CollectionName": "weights"},
                ],
            }
        )
    )
    out = tmp_path / "run"
    config = validate_config(
        ExperimentConfig,
        {
            "name": "smdebug",
            "output_dir": str(out),
            "data": {"dataset": "textures", "root": str(textures_root), "image_size": 32,
                     "num_workers": 0},
            "model": {"name": "efficientnet_lite0", "weights": None},
            "training": {"epochs": 1, "batch_size": BATCH, "seed": 0, "device": "cpu"},
            "debugger": {"rules": [{"name": "loss_not_decreasing"}], "save_interval": 1,
                         "smdebug_config": str(hook_config)},
        },
    )  # fmt: skip
    dump_config(config, tmp_path / "run.yaml")

    train = _run(python, "-m", "breedclf.cli", "train", tmp_path / "run.yaml", "--no-progress")
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert "registered the smdebug hook" in train.stdout + train.stderr

    read = _run(python, "-c", READ_BACK, tensors, timeout=300)
    assert read.returncode == 0, read.stderr[-3000:]
    line = next(x for x in read.stdout.splitlines() if x.startswith("RESULT "))
    seen: dict[str, Any] = json.loads(line.removeprefix("RESULT "))

    ours = load_trial(out)
    steps = ours.steps()  # our optimizer steps 1..N; smdebug counts from 0
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 4
    assert seen["train_steps"] == [s - 1 for s in steps]
    # Only the validation pass of the fit (2 batches of the 45 images); the evaluation after
    # the fit is not recorded: the hook is off the model once training ends.
    assert seen["eval_steps"] == [0, 1]
    assert seen["losses"] == ["CrossEntropyLoss_output_0"]
    # smdebug saw the same losses our debugger saw.
    assert seen["train_loss"] == pytest.approx(
        [ours.value("loss", s, reduction="mean") for s in steps], rel=1e-5
    )
    assert "gradient/ImageClassifier_head.weight" in seen["gradients"]
    assert "ImageClassifier_head.weight" in seen["weights"]


def _named_hook_config(path: Path) -> Experiment:
    config = validate_config(
        ExperimentConfig,
        {"debugger": {"smdebug_config": str(path)}, "output_dir": str(path.parent / "run")},
    )
    return Experiment(config, progress=False)


@pytest.mark.skipif(smdebug_available(), reason="this environment has smdebug")
def test_named_hook_config_without_smdebug_names_the_extra(tmp_path: Path) -> None:
    hook_config = tmp_path / "debughookconfig.json"
    hook_config.write_text('{"LocalPath": "unused"}')
    with pytest.raises(MissingDependencyError, match=r"pip install 'breedclf\[smdebug\]'"):
        _named_hook_config(hook_config).create_callbacks()
