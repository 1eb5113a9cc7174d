"""One trial, run by ``python -m breedclf.tuning._worker TRIAL_DIR/job.json``.

The study process asked Optuna for the trial and wrote its experiment config into the job; this
process trains it with the same :func:`breedclf.run` as ``breedclf train``, reports the
validation objective to the study's storage after every epoch (so the pruner can stop it), and
writes ``result.json`` for the study process, which tells Optuna the outcome.
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from breedclf.errors import BreedclfError
from breedclf.training import Callback, EpochResult, Trainer

__all__ = ["JOB_FILE", "RESULT_FILE", "TrialReporter", "run_job", "write_result"]

RESULT_FILE = "result.json"
JOB_FILE = "job.json"


class TrialFailedError(BreedclfError, RuntimeError):
    """The trial cannot go on (its objective is not a number, or the study stopped)."""


class TrialReporter(Callback):
    """Reports the validation objective to Optuna after every epoch; prunes when told to.

    A pruned trial stops after the current epoch (``trainer.should_stop``), so it still ends
    with a selected, saved model like any run.

    Args:
        trial: The Optuna trial (a live handle on the study's storage).
        objective: ``valid_acc`` or ``valid_loss``.
        parent_pid: The study process; if it dies, the trial stops at the next batch instead of
            training on as an orphan.
    """

    rank_zero_only = True  # one report per epoch to the study

    def __init__(self, trial: Any, objective: str, *, parent_pid: int | None = None) -> None:
        self.trial = trial
        self.metric = objective.removeprefix("valid_")
        self.parent_pid = parent_pid
        self.epochs = 0
        self.pruned_at: int | None = None
        self.last_value: float | None = None

    def on_train_batch_end(self, trainer: Trainer, step: Any) -> None:
        """Stop if the study process is gone."""
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            raise TrialFailedError("the study process stopped; this trial is abandoned")

    def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:
        """Report the epoch's validation value; stop after this epoch if the pruner says so."""
        self.epochs = result.epoch
        if self.metric not in result.valid:
            raise TrialFailedError(
                "the experiment has no validation split: tuning needs one (data.split.valid > 0 "
                "or a valid/ folder)"
            )
        value = float(result.valid[self.metric])
        if not math.isfinite(value):
            raise TrialFailedError(f"valid_{self.metric} is {value} at epoch {result.epoch}")
        self.last_value = value
        self.trial.report(value, result.epoch)
        if self.trial.should_prune():
            self.pruned_at = result.epoch
            trainer.should_stop = True


def run_job(job_path: Path) -> dict[str, Any]:
    """Train the trial described by ``job.json``; return what ``result.json`` holds."""
    import optuna
    import torch

    from breedclf.config import ExperimentConfig, validate_config
    from breedclf.experiment import Experiment, run
    from breedclf.tuning._config import PrunerConfig, StudyConfig
    from breedclf.tuning._features import CachedFeatureExperiment, uses_feature_cache
    from breedclf.tuning._study import create_pruner, open_storage

    job = json.loads(job_path.read_text(encoding="utf-8"))
    torch.set_num_threads(int(job["threads"]))
    study_config = validate_config(StudyConfig, job["study"])
    pruner_config: PrunerConfig = study_config.pruner
    storage = open_storage(study_config)
    study = optuna.load_study(
        study_name=study_config.study_name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),  # parameters were sampled by the study process
        pruner=create_pruner(pruner_config, epochs=int(job["epochs"])),
    )
    trial = optuna.Trial(study, int(job["trial_id"]))
    config = validate_config(ExperimentConfig, job["config"])
    reporter = TrialReporter(trial, study_config.objective, parent_pid=job.get("parent_pid"))
    cached = study_config.cache_features and uses_feature_cache(config)
    experiment: Experiment
    if cached:
        experiment = CachedFeatureExperiment(
            config,
            cache_dir=Path(study_config.study_dir) / "features",
            callbacks=[reporter],
            progress=False,
        )
    else:
        experiment = Experiment(config, callbacks=[reporter], progress=False)
    started = time.perf_counter()
    base = {"epochs": 0, "cached": cached}
    try:
        result = run(experiment)
    except Exception as exc:
        traceback.print_exc()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {
            **base,
            "state": "failed",
            "reason": f"{type(exc).__name__}: {reason}",
            "epochs": reporter.epochs,
            "seconds": time.perf_counter() - started,
        }
    seconds = time.perf_counter() - started
    if reporter.pruned_at is not None:
        return {
            **base,
            "state": "pruned",
            "value": reporter.last_value,
            "epochs": reporter.epochs,
            "seconds": seconds,
        }
    value = float(result.valid.get(reporter.metric, math.nan))
    if not math.isfinite(value):
        return {
            **base,
            "state": "failed",
            "reason": f"{study_config.objective} is {value}",
            "epochs": reporter.epochs,
            "seconds": seconds,
        }
    return {
        **base,
        "state": "complete",
        "value": value,
        "epochs": reporter.epochs,
        "best_epoch": result.best_epoch,
        "seconds": seconds,
    }


def write_result(job_path: Path) -> None:
    """Run the job and write its ``result.json`` atomically (the study process reads it)."""
    warnings.filterwarnings("ignore", module="optuna")
    result = run_job(job_path)
    out = job_path.parent / RESULT_FILE
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(out)
