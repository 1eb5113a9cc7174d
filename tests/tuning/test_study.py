"""Real studies: trials train in worker processes, prune, resume after kill -9, run in parallel."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from breedclf.config import load_config, override
from breedclf.experiment import Experiment, run
from breedclf.saved_model import load_model
from breedclf.tuning import read_trials
from tests.tuning.conftest import tiny_experiment, write_study

FINISHED = ("COMPLETE", "PRUNED")


def tune_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``breedclf tune ...`` as a user runs it: a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "breedclf.cli", "tune", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=cwd,
    )


def rows(study_dir: Path) -> list[dict[str, str]]:
    with (study_dir / "trials.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def parallel_study(textures_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-trial study run by the CLI with two workers; full fine-tuning and frozen trials."""
    base = tmp_path_factory.mktemp("study")
    (base / "exp.yaml").write_text(
        __import__("yaml").safe_dump(tiny_experiment(textures_root)), encoding="utf-8"
    )
    path = write_study(
        base / "study.yaml",
        experiment="exp.yaml",
        study_dir=str(base / "out"),
        trials=2,
        sampler="random",
        seed=1,
        pruner={"name": "none"},
        parameters={
            "optimizer.lr": {"type": "continuous", "low": 1e-3, "high": 3e-2, "scaling": "log"},
            "optimizer.name": {"type": "categorical", "values": ["adamw", "sgd"]},
            "optimizer.momentum": {"type": "continuous", "low": 0.5, "high": 0.95},
            "model.freeze.policy": {"type": "categorical", "values": ["none", "backbone"]},
        },
    )
    result = tune_cli(str(path), "--set", "trials=4", "--parallel", "2", "--evaluate-test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "best trial" in result.stdout
    assert "test accuracy of the best model" in result.stdout
    return base / "out"


def test_study_writes_a_complete_trials_table(parallel_study: Path) -> None:
    table = rows(parallel_study)
    assert len(table) == 4
    assert [int(r["number"]) for r in table] == [0, 1, 2, 3]
    assert all(r["state"] == "COMPLETE" for r in table), table
    for r in table:
        assert 0.0 <= float(r["valid_acc"]) <= 1.0
        assert r["epochs"] == "2"
        assert float(r["seconds"]) > 0
        assert r["model.freeze.policy"] in ("none", "backbone")
        # momentum belongs to SGD trials only
        assert (r["optimizer.momentum"] != "") == (r["optimizer.name"] == "sgd")
    assert read_trials(parallel_study) == table


def test_two_workers_ran_trials_at_the_same_time(parallel_study: Path) -> None:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(parallel_study / "journal.log"))
    )
    trials = optuna.load_study(study_name="out", storage=storage).get_trials()
    spans = [(t.datetime_start, t.datetime_complete) for t in trials]
    assert all(start is not None and end is not None for start, end in spans)
    overlapping = [
        (a, b)
        for i, a in enumerate(spans)
        for b in spans[i + 1 :]
        if a[0] < b[1] and b[0] < a[1]  # type: ignore[operator]
    ]
    assert overlapping, spans


def test_best_config_is_complete_and_trains(parallel_study: Path, tmp_path: Path) -> None:
    best = load_config(parallel_study / "best" / "config.yaml")
    assert not best.training.evaluate_test  # as the experiment had it
    assert str(best.output_dir) == "unused"  # the experiment's own, not a trial's folder
    table = {r["number"]: r for r in rows(parallel_study)}
    import json

    trial = json.loads((parallel_study / "best" / "trial.json").read_text(encoding="utf-8"))
    chosen = table[str(trial["number"])]
    assert best.model.freeze.policy == chosen["model.freeze.policy"]
    assert best.optimizer.name == chosen["optimizer.name"]
    assert best.optimizer.lr == pytest.approx(float(chosen["optimizer.lr"]))
    assert float(chosen["valid_acc"]) == max(float(r["valid_acc"]) for r in table.values())
    retrain = override(best, {"output_dir": str(tmp_path / "retrain"), "training.epochs": 1})
    result = run(Experiment(retrain, progress=False))
    assert result.valid["count"] > 0


def test_best_model_predicts_labelled_classes(parallel_study: Path, textures_root: Path) -> None:
    model = load_model(parallel_study / "best" / "model")
    assert model.classes == ["brick", "grass", "gravel"]
    image = next((textures_root / "test" / "brick").iterdir())
    predictions = model.predict(image, top_k=3)
    assert {p["label"] for p in predictions} == set(model.classes)


def test_evaluate_test_tests_only_the_best_model_once(parallel_study: Path) -> None:
    import json

    report = json.loads((parallel_study / "best" / "model" / "eval-test.json").read_text())
    assert report["count"] > 0 and 0.0 <= report["acc"] <= 1.0


def test_only_the_best_model_is_kept(parallel_study: Path) -> None:
    kept = sorted(p.parent.name for p in (parallel_study / "trials").glob("*/model"))
    import json

    best = json.loads((parallel_study / "best" / "trial.json").read_text(encoding="utf-8"))
    assert kept == [f"{best['number']:04d}"]


def test_no_trial_ever_evaluates_the_test_split(parallel_study: Path) -> None:
    logs = [*parallel_study.glob("trials/*/trial.log"), *parallel_study.glob("trials/*/*.jsonl")]
    assert len(logs) == 8
    for path in logs:
        text = path.read_text(encoding="utf-8")
        assert "split=valid" in text or '"valid"' in text
        assert "split=test" not in text and '"split": "test"' not in text, path
    assert not list(parallel_study.glob("trials/*/eval-test.json"))


def test_show_prints_the_table_and_the_best_trial(parallel_study: Path) -> None:
    result = tune_cli("show", str(parallel_study))
    assert result.returncode == 0, result.stderr
    assert "4 trials: complete 4" in result.stdout
    assert "best trial" in result.stdout
    assert "optimizer.lr" in result.stdout


def test_report_is_written(parallel_study: Path) -> None:
    page = (parallel_study / "report.html").read_text(encoding="utf-8")
    for title in ("Optimization history", "Validation per epoch", "Parameter importances"):
        assert title in page
    assert page.count("<svg") >= 4
    # Self-contained: nothing to fetch (SVG namespaces are names, not downloads).
    assert "<script" not in page and "<link" not in page
    references = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert references and all(ref.startswith(("#", "data:")) for ref in references)


# ----------------------------------------------------------------------------------- pruning


@pytest.mark.slow
def test_clearly_worse_trials_are_pruned_early(textures_root: Path, tmp_path: Path) -> None:
    """A tiny learning rate leaves the head near chance after epoch 1: the median pruner stops
    those trials; the good ones run all their epochs."""
    path = write_study(
        tmp_path / "study.yaml",
        experiment=tiny_experiment(textures_root, epochs=4),
        study_dir=str(tmp_path / "out"),
        trials=6,
        sampler="random",
        seed=2,
        pruner={"name": "median", "warmup_epochs": 0, "startup_trials": 1},
        parameters={"optimizer.lr": {"type": "categorical", "values": [3e-2, 1e-7]}},
    )
    result = tune_cli(str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(tmp_path / "out")
    assert sum(r["state"] in FINISHED for r in table) == 6
    pruned = [r for r in table if r["state"] == "PRUNED"]
    complete = [r for r in table if r["state"] == "COMPLETE"]
    assert pruned, table
    assert all(float(r["optimizer.lr"]) == 1e-7 for r in pruned)
    assert all(int(r["epochs"]) < 4 for r in pruned)
    assert all(int(r["epochs"]) == 4 for r in complete)
    assert all(r["cached"] == "True" for r in table)  # frozen backbone, no augmentation


# ------------------------------------------------------------------------------------ resume


def _wait_for_running_trial(study_dir: Path, process: subprocess.Popen[Any]) -> str:
    """Wait until one trial finished and the next one is running; return the running one."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert process.poll() is None, "the study ended before it could be killed"
        finished = rows(study_dir) if (study_dir / "trials.csv").is_file() else []
        done = {r["number"] for r in finished if r["state"] in FINISHED}
        if done:
            running = [
                d.name
                for d in (study_dir / "trials").iterdir()
                if (d / "job.json").is_file() and not (d / "result.json").exists()
            ]
            if running and (study_dir / "trials" / running[0] / "trial.log").stat().st_size:
                return running[0]
        time.sleep(0.2)
    raise AssertionError("no trial started in time")


@pytest.mark.slow
def test_kill_9_then_rerun_keeps_finished_trials_and_requeues_the_running_one(
    textures_root: Path, tmp_path: Path
) -> None:
    path = write_study(
        tmp_path / "study.yaml",
        experiment=tiny_experiment(textures_root, epochs=3),
        study_dir=str(tmp_path / "out"),
        trials=3,
        sampler="tpe",
        seed=0,
        pruner={"name": "none"},
        parameters={
            "optimizer.lr": {"type": "continuous", "low": 1e-3, "high": 1e-1, "scaling": "log"},
            "training.batch_size": {"type": "categorical", "values": [16, 32]},
        },
    )
    study_dir = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "breedclf.cli", "tune", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: kill the study and its trials at once
    )
    try:
        running = _wait_for_running_trial(study_dir, process)
        before = {r["number"]: r for r in rows(study_dir) if r["state"] in FINISHED}
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    job = __import__("json").loads((study_dir / "trials" / running / "job.json").read_text())

    result = tune_cli(str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(study_dir)
    numbers = [r["number"] for r in table]
    assert len(numbers) == len(set(numbers))
    assert sum(r["state"] in FINISHED for r in table) == 3
    for number, row in before.items():  # finished trials are kept as they were
        assert {k: v for k, v in table[int(number)].items()} == row
    killed = table[int(running)]
    assert killed["state"] == "FAIL"
    assert "interrupted" in killed["failure_reason"]
    requeued = [
        r
        for r in table
        if int(r["number"]) > int(running)
        and r["optimizer.lr"] == killed["optimizer.lr"]
        and r["training.batch_size"] == killed["training.batch_size"]
    ]
    assert len(requeued) == 1 and requeued[0]["state"] in FINISHED
    assert job["config"]["optimizer"]["lr"] == pytest.approx(float(killed["optimizer.lr"]))


def test_a_second_process_on_the_same_journal_study_is_refused(
    textures_root: Path, tmp_path: Path
) -> None:
    import fcntl

    path = write_study(
        tmp_path / "study.yaml",
        experiment=tiny_experiment(textures_root),
        study_dir=str(tmp_path / "out"),
        trials=1,
        parameters={"optimizer.lr": {"type": "continuous", "low": 1e-3, "high": 1e-2}},
    )
    (tmp_path / "out").mkdir()
    with (tmp_path / "out" / ".study.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = tune_cli(str(path))
    assert result.returncode == 2
    assert "is being run by another process" in result.stderr


# ------------------------------------------------------------------------------------ report

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_report_opens_offline_in_headless_chromium_with_visible_plots(
    parallel_study: Path,
) -> None:
    import warnings

    from playwright.sync_api import sync_playwright

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--headless", "--no-sandbox", "--disable-gpu"],
                headless=True,
            )
            try:
                context = browser.new_context(offline=True)
                page = context.new_page()
                requests: list[str] = []
                page.on("request", lambda r: requests.append(r.url))
                page.goto((parallel_study / "report.html").as_uri())
                plots = page.locator("figure.plot svg")
                assert plots.count() == 4
                for i in range(plots.count()):
                    box = plots.nth(i).bounding_box()
                    assert box is not None and box["width"] > 300 and box["height"] > 150
                    assert plots.nth(i).is_visible()
                    # a plot has drawn paths, not an empty frame
                    assert plots.nth(i).locator("path").count() > 10
                assert page.locator("#trials tbody tr").count() == 4
                assert page.locator("#trials tr.best").count() == 1
                assert [u for u in requests if not u.startswith("file://")] == []
            finally:
                browser.close()


# ---------------------------------------------------------------------------------- failures


def test_failing_trials_are_recorded_with_their_reason(textures_root: Path, tmp_path: Path) -> None:
    """Trials that raise are failed with the reason; the study stops at max_failed_trials."""
    path = write_study(
        tmp_path / "study.yaml",
        experiment=tiny_experiment(textures_root),
        study_dir=str(tmp_path / "out"),
        trials=3,
        max_failed_trials=2,
        parameters={"training.device": {"type": "categorical", "values": ["cuda:7"]}},
    )
    result = tune_cli(str(path))
    assert result.returncode == 2
    assert "no trial of 'out' completed" in result.stderr
    table = rows(tmp_path / "out")
    assert [r["state"] for r in table] == ["FAIL", "FAIL"]
    for r in table:
        assert r["failure_reason"].startswith("ConfigurationError:")
        assert "cuda:7" in r["failure_reason"]


def test_a_nan_objective_fails_the_trial_not_the_study(textures_root: Path, tmp_path: Path) -> None:
    """A diverged trial (loss nan) is failed with the reason; it never becomes the best."""
    path = write_study(
        tmp_path / "study.yaml",
        experiment=tiny_experiment(textures_root),
        study_dir=str(tmp_path / "out"),
        objective="valid_loss",
        trials=1,
        max_failed_trials=1,
        parameters={"optimizer.lr": {"type": "categorical", "values": [1.0e30]}},
    )
    result = tune_cli(str(path))
    assert result.returncode == 2
    (row,) = rows(tmp_path / "out")
    assert row["state"] == "FAIL"
    assert "valid_loss is nan" in row["failure_reason"]
    assert not (tmp_path / "out" / "best").exists()
