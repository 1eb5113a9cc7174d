"""Experiment runs: never destroyed or silently changed, resumable in containers, split-stable."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import breedclf
from breedclf.cli import app
from breedclf.config import ExperimentConfig, dump_config, load_config, override, validate_config
from breedclf.errors import (
    BreedclfError,
    CheckpointError,
    ConfigurationError,
    DatasetError,
    RunExistsError,
    UnknownNameError,
)
from breedclf.experiment import Experiment, config_changes, run
from breedclf.training import CALLBACKS, Callback, EpochResult, Trainer, register_callback

runner = CliRunner()


def tiny(root: Path, out: Path, **updates: Any) -> ExperimentConfig:
    """A run of a few seconds: random-init Lite0 at 32 px on the texture photographs."""
    config = validate_config(
        ExperimentConfig,
        {
            "name": "tiny",
            "output_dir": str(out),
            "data": {"dataset": "textures", "root": str(root), "image_size": 32},
            "model": {"name": "efficientnet_lite0", "weights": None},
            "optimizer": {"name": "adamw", "lr": 1e-3},
            "training": {"epochs": 1, "batch_size": 32, "seed": 3, "evaluate_test": True},
        },
    )
    return override(config, updates)


@pytest.fixture(scope="module")
def finished(textures_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 1-epoch run, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    run(Experiment(tiny(textures_root, out), progress=False))
    return out


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------ runs are never destroyed (item 7)


def test_training_into_an_existing_run_is_refused_and_changes_nothing(
    finished: Path, textures_root: Path
) -> None:
    before = _snapshot(finished)
    with pytest.raises(RunExistsError, match=r"--resume.*--overwrite"):
        run(Experiment(tiny(textures_root, finished), progress=False))
    assert _snapshot(finished) == before


def test_cli_refusal_is_one_error_line(finished: Path, tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    shutil.copy(finished / "config.yaml", config)
    result = subprocess.run(
        [sys.executable, "-m", "breedclf.cli", "train", str(config), "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "--resume" in result.stderr and "--overwrite" in result.stderr
    assert "Traceback" not in result.stderr


def test_overwrite_replaces_the_previous_run(textures_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(Experiment(tiny(textures_root, out), progress=False))
    (out / "notes.txt").write_text("mine")
    result = run(
        Experiment(tiny(textures_root, out, **{"training.seed": 4}), progress=False),
        overwrite=True,
    )
    records = (out / "metrics.jsonl").read_text().splitlines()
    assert sum('"event": "epoch"' in r for r in records) == 1  # not appended to the old log
    assert load_config(out / "config.yaml").training.seed == 4
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own files are replaced
    assert (result.model_dir / "breedclf.json").is_file()


# --------------------------------------------- resume checks the config (items 8 and 22)


def test_resume_with_a_changed_config_lists_the_fields(finished: Path, textures_root: Path) -> None:
    before = _snapshot(finished)
    changed = tiny(textures_root, finished, **{"training.batch_size": 16, "optimizer.lr": 0.01})
    with pytest.raises(CheckpointError) as info:
        run(Experiment(changed, progress=False), resume=True)
    message = str(info.value)
    assert "training.batch_size: 32 -> 16" in message
    assert "optimizer.lr: 0.001 -> 0.01" in message
    assert "--allow-config-change" in message
    assert _snapshot(finished) == before  # config.yaml not rewritten


def test_resume_with_another_architecture_is_one_line_exit_2(
    finished: Path, tmp_path: Path
) -> None:
    before = _snapshot(finished)
    config = tmp_path / "exp.yaml"
    shutil.copy(finished / "config.yaml", config)
    result = subprocess.run(
        [sys.executable, "-m", "breedclf.cli", "train", str(config), "--resume",
         "--no-progress", "--set", "model.name=resnet18"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "model.name: efficientnet_lite0 -> resnet18" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr) < 2000
    assert _snapshot(finished) == before


def test_changes_that_do_not_affect_training_are_allowed() -> None:
    base = ExperimentConfig()
    moved = override(
        base,
        {
            "output_dir": "/elsewhere",
            "data.root": "/mnt/data",
            "data.num_workers": 4,
            "training.device": "cpu",
            "name": "renamed",
        },
    )
    assert config_changes(base.model_dump(mode="json"), moved) == []
    more = override(base, {"training.epochs": 20})
    assert config_changes(base.model_dump(mode="json"), more) == ["training.epochs: 10 -> 20"]


def test_allowed_config_change_resumes_for_more_epochs(textures_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(Experiment(tiny(textures_root, out), progress=False))
    longer = tiny(textures_root, out, **{"training.epochs": 2})
    with pytest.raises(CheckpointError, match=r"training\.epochs: 1 -> 2"):
        run(Experiment(longer, progress=False), resume=True)
    result = run(Experiment(longer, progress=False), resume=True, allow_config_change=True)
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert load_config(out / "config.yaml").training.epochs == 2


# ---------------------------------------------------- container entry point seams (item 14)


def test_auto_resume_and_separate_model_and_checkpoint_dirs(
    textures_root: Path, tmp_path: Path
) -> None:
    out, ckpt, model_dir = tmp_path / "out", tmp_path / "ckpt", tmp_path / "sm-model"
    config = tiny(textures_root, out, checkpoint_dir=str(ckpt), model_dir=str(model_dir))
    first = run(Experiment(config, progress=False), resume="auto")  # nothing to resume: starts
    assert first.model_dir == model_dir
    assert (model_dir / "model.safetensors").is_file()
    assert (ckpt / "last.ckpt").is_file()
    assert not (out / "checkpoints").exists() and not (out / "model").exists()
    # A restarted container: a fresh output directory, the checkpoint directory survived.
    again = override(config, {"output_dir": str(tmp_path / "out2")})
    second = run(Experiment(again, progress=False), resume="auto")
    assert second.best_epoch == first.best_epoch
    assert second.valid["acc"] == first.valid["acc"]
    metrics = (tmp_path / "out2" / "metrics.jsonl").read_text()
    assert '"event": "epoch"' not in metrics  # resumed after the last epoch: nothing retrained


def test_resume_true_without_checkpoint_is_an_error(textures_root: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint"):
        run(Experiment(tiny(textures_root, tmp_path / "run"), progress=False), resume=True)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------- split manifest (item 1, integration)


def test_runs_and_models_keep_their_splits(finished: Path, tmp_path: Path) -> None:
    manifest = json.loads((finished / "splits.json").read_text())
    assert json.loads((finished / "model" / "splits.json").read_text()) == manifest
    # Copy the data, add an image to one class: the saved model still evaluates on its own
    # test files, and a listed file that is gone is a clear error.
    config = load_config(finished / "model" / "experiment.yaml")
    assert config.data.root is not None
    data = tmp_path / "data"
    shutil.copytree(config.data.root, data)
    model_dir = tmp_path / "model"
    shutil.copytree(finished / "model", model_dir)
    moved = override(config, {"data.root": str(data)})
    dump_config(moved, model_dir / "experiment.yaml")
    original = Experiment.from_saved(model_dir).evaluate("test")
    extra = next((data / "test").rglob("*.png"))
    shutil.copy(extra, extra.with_name("added.png"))
    assert Experiment.from_saved(model_dir).evaluate("test")["count"] == original["count"]
    extra.unlink()
    with pytest.raises(DatasetError, match=extra.name):
        Experiment.from_saved(model_dir).evaluate("test")


def test_evaluate_from_saved_matches_the_run(finished: Path) -> None:
    saved = json.loads((finished / "model" / "breedclf.json").read_text())
    experiment = Experiment.from_saved(finished / "model")
    metrics = experiment.evaluate("test")
    assert metrics["count"] == saved["metrics"]["test"]["count"]
    assert metrics["acc"] == pytest.approx(saved["metrics"]["test"]["acc"])
    assert metrics["loss"] == pytest.approx(saved["metrics"]["test"]["loss"], rel=1e-5)
    assert (finished / "model" / "eval-test.json").is_file()
    result = runner.invoke(app, ["evaluate", str(finished / "model"), "--split", "valid"])
    assert result.exit_code == 0, result.output
    assert f"({saved['metrics']['valid']['count']} images)" in result.output


# ------------------------------------------------------ callbacks from YAML (item 15)


class CountEpochs(Callback):
    """Counts epochs into a file (so the test sees the callback ran in-process)."""

    def __init__(self, *, path: str, label: str = "epoch") -> None:
        self.path = Path(path)
        self.label = label

    def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:
        with open(self.path, "a") as fh:
            fh.write(f"{self.label} {result.epoch}\n")


def test_callbacks_listed_in_yaml_are_built_and_run(textures_root: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "epochs.txt"
    with CALLBACKS.scoped():
        register_callback("count_epochs")(CountEpochs)
        config = tiny(
            textures_root,
            tmp_path / "run",
            callbacks=[{"name": "count_epochs", "params": {"path": str(log_file), "label": "e"}}],
        )
        path = tmp_path / "exp.yaml"
        dump_config(config, path)
        assert load_config(path) == config
        run(Experiment(load_config(path), progress=False))
    assert log_file.read_text() == "e 1\n"
    assert "count_epochs" not in CALLBACKS


def test_callback_config_errors_name_the_fix(textures_root: Path, tmp_path: Path) -> None:
    with CALLBACKS.scoped():
        register_callback("count_epochs")(CountEpochs)
        unknown = tiny(textures_root, tmp_path / "a", callbacks=[{"name": "count_epoch"}])
        with pytest.raises(UnknownNameError, match="count_epochs"):
            Experiment(unknown).create_callbacks()
        typo = tiny(
            textures_root,
            tmp_path / "b",
            callbacks=[{"name": "count_epochs", "params": {"path": "x", "lable": "y"}}],
        )
        with pytest.raises(ConfigurationError, match=r"'lable'; did you mean 'label'"):
            Experiment(typo).create_callbacks()
        missing = tiny(textures_root, tmp_path / "c", callbacks=[{"name": "count_epochs"}])
        with pytest.raises(ConfigurationError, match="needs the parameter"):
            Experiment(missing).create_callbacks()
    early = tiny(
        textures_root, tmp_path / "d", callbacks=[{"name": "early_stopping", "params": {}}]
    )
    assert "EarlyStopping" in [type(cb).__name__ for cb in Experiment(early).create_callbacks()]


# ---------------------------------------------------- explicit trainer, logging (31, 26)


def test_trainer_is_built_explicitly(textures_root: Path, tmp_path: Path) -> None:
    experiment = Experiment(tiny(textures_root, tmp_path / "run"))
    with pytest.raises(BreedclfError, match="build_trainer"):
        _ = experiment.trainer
    trainer = experiment.build_trainer()
    assert experiment.trainer is trainer
    assert experiment.build_trainer() is trainer


def test_plain_python_shows_epoch_lines_without_logging_setup(
    textures_root: Path, tmp_path: Path
) -> None:
    config = tiny(textures_root, tmp_path / "run")
    path = tmp_path / "exp.yaml"
    dump_config(config, path)
    script = textwrap.dedent(
        f"""
        import breedclf
        breedclf.run(breedclf.Experiment.from_yaml({str(path)!r}, progress=False))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert "epoch=1 split=valid loss=" in result.stdout
    assert "split=test loss=" in result.stdout


def test_public_run_is_exported() -> None:
    assert breedclf.run is run
