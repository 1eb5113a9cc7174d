"""The study process: asks Optuna for trials, runs each in a worker process, records outcomes."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from breedclf._io import atomic_path
from breedclf.config import ExperimentConfig, config_to_dict, dump_config, override
from breedclf.errors import BreedclfError, ConfigurationError
from breedclf.tuning._config import (
    HyperbandPrunerConfig,
    MedianPrunerConfig,
    PrunerConfig,
    StudyConfig,
    SuccessiveHalvingPrunerConfig,
    check_space,
    dump_study_config,
    load_study_config,
    resolve_experiment,
)
from breedclf.tuning._space import best_config, grid_size, grid_space, suggest_values, trial_config
from breedclf.tuning._trial import JOB_FILE, RESULT_FILE

__all__ = [
    "BestTrial",
    "Study",
    "StudyBusyError",
    "TrialSummary",
    "create_pruner",
    "open_storage",
    "read_trials",
    "tune",
]

log = logging.getLogger("breedclf.tuning")

JOURNAL_FILE = "journal.log"
TRIALS_CSV = "trials.csv"
LOCK_FILE = ".study.lock"
#: Seconds between heartbeats of running trials on a database storage, and how long a trial may
#: go without one before another worker fails and retries it (its process or machine died).
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 60
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class StudyBusyError(BreedclfError, RuntimeError):
    """Another process is running this study with the journal storage."""


@dataclass(frozen=True)
class TrialSummary:
    """One trial as ``trials.csv`` lists it.

    Attributes:
        number: Optuna's trial number (unique in the study).
        state: ``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING`` or ``WAITING``.
        value: The objective (the last reported one for a pruned trial).
        params: Experiment-config values, by dotted path.
        epochs: Epochs trained.
        seconds: Wall-clock time of the trial.
        failure_reason: Why it failed.
        cached: Trained on cached frozen-backbone features.
    """

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    epochs: int | None
    seconds: float | None
    failure_reason: str | None = None
    cached: bool = False


@dataclass(frozen=True)
class BestTrial:
    """The best finished trial and where its outputs are.

    Attributes:
        number: Trial number.
        value: Its validation objective.
        params: Its values, by dotted path.
        config: The complete experiment config (also ``study_dir/best/config.yaml``).
        config_path: ``study_dir/best/config.yaml``.
        model_dir: ``study_dir/best/model`` (``None`` when another machine ran the trial).
        test: Test metrics of its model with ``evaluate_test``, else ``None``.
    """

    number: int
    value: float
    params: dict[str, Any]
    config: ExperimentConfig
    config_path: Path
    model_dir: Path | None
    test: dict[str, Any] | None = None


@dataclass
class _Running:
    trial: optuna.Trial
    number: int
    process: subprocess.Popen[bytes]
    directory: Path
    log: IO[bytes]
    started: float = field(default_factory=time.monotonic)


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's heartbeat and retry helpers warn that they are experimental; they are stable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def open_storage(config: StudyConfig) -> optuna.storages.BaseStorage:
    """The study's storage: a journal file in ``study_dir``, or the configured database.

    A database storage records heartbeats of running trials: a trial whose worker died stops
    beating, and the next worker to look fails it and queues it again (Optuna's own
    ``RetryHeartbeatStaleTrialCallback``, up to 3 times).
    """
    if config.storage is None:
        path = Path(config.study_dir) / JOURNAL_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)
    with _quiet_optuna():
        return optuna.storages.RDBStorage(
            config.storage,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            grace_period=GRACE_PERIOD,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=3
            ),
        )


def create_pruner(config: PrunerConfig, *, epochs: int) -> optuna.pruners.BasePruner:
    """Optuna's pruner for ``config``; intermediate values are reported at epochs 1, 2, ..."""
    if isinstance(config, MedianPrunerConfig):
        # Optuna prunes from step n_warmup_steps on; epochs 1..warmup_epochs must never be.
        return optuna.pruners.MedianPruner(
            n_startup_trials=config.startup_trials, n_warmup_steps=config.warmup_epochs + 1
        )
    if isinstance(config, SuccessiveHalvingPrunerConfig):
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=config.min_epochs, reduction_factor=config.reduction_factor
        )
    if isinstance(config, HyperbandPrunerConfig):
        return optuna.pruners.HyperbandPruner(
            min_resource=config.min_epochs,
            max_resource=max(epochs, config.min_epochs),
            reduction_factor=config.reduction_factor,
        )
    return optuna.pruners.NopPruner()


class _GridSampler(optuna.samplers.GridSampler):
    # Optuna's GridSampler calls study.stop() once the grid is used up, which only works inside
    # study.optimize; the study process counts trials itself and caps them at the grid size.
    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: TrialState,
        values: Any,
    ) -> None:
        return None


def _create_sampler(config: StudyConfig, seed: int | None) -> optuna.samplers.BaseSampler:
    with _quiet_optuna():
        if config.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if config.sampler == "grid":
            return _GridSampler(grid_space(config), seed=seed)
        if config.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        if config.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed)
        # constant_liar: running trials count as bad guesses, so parallel workers spread out.
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


class Study:
    """A hyperparameter study on one experiment, run locally with Optuna.

    Each trial's experiment config is the base experiment with the trial's values applied by
    :func:`~breedclf.config.override` (validated), trained by :func:`breedclf.run` in its own
    process under ``study_dir/trials/NNNN``; its validation objective is reported every epoch
    so the pruner can stop it. Running the same study again continues it: finished trials are
    kept, trials that were running when it was killed are re-queued with the same parameters.

    Args:
        config: The study.
        progress: Show a progress bar (``None``: on a terminal).
        evaluate_test: Evaluate the best trial's model on the test split once, at the end.

    Raises:
        ConfigurationError: The experiment or the search space is invalid (checked before any
            trial runs).

    Example:
        >>> study = Study.from_yaml("examples/tuning/study.yaml")  # doctest: +SKIP
        >>> best = study.optimize()                                 # doctest: +SKIP
        >>> best.value, best.params, best.config_path               # doctest: +SKIP
    """

    def __init__(
        self,
        config: StudyConfig,
        *,
        progress: bool | None = None,
        evaluate_test: bool = False,
    ) -> None:
        self.config = config
        self.experiment = resolve_experiment(config)
        check_space(config, self.experiment)
        self.progress = progress
        self.evaluate_test = evaluate_test
        self.trials_target = config.trials
        if config.sampler == "grid":
            self.trials_target = min(config.trials, grid_size(config))

    @classmethod
    def from_yaml(
        cls, path: str | Path, overrides: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Study:
        """Load a study file, apply dotted ``overrides`` (``{"trials": 4}``), build the study."""
        config = load_study_config(path)
        if overrides:
            config = override(config, overrides, source=f"{path} (with overrides)")
        return cls(config, **kwargs)

    @property
    def study_dir(self) -> Path:
        """Where the study writes."""
        return Path(self.config.study_dir)

    # --------------------------------------------------------------------------- running

    def optimize(self) -> BestTrial:
        """Run trials until ``trials`` have finished (complete or pruned); return the best.

        Writes ``trials.csv``, ``best/config.yaml``, ``best/model`` and ``report.html`` in
        ``study_dir``.

        Raises:
            StudyBusyError: Another process runs this study (journal storage).
            BreedclfError: No trial completed.
        """
        from breedclf.experiment import ensure_logging

        ensure_logging()
        self.study_dir.mkdir(parents=True, exist_ok=True)
        with self._exclusive():
            # A self-contained record: the experiment inline, as the trials were built from it.
            inline = self.config.model_copy(update={"experiment": config_to_dict(self.experiment)})
            dump_study_config(inline, self.study_dir / "study.yaml")
            study = self._load_study()
            self._requeue_interrupted(study)
            self._loop(study)
            self._write_outputs(study)
            best = self._finish(study)
        return best

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self.config.storage is not None:  # a database: workers may join from anywhere
            yield
            return
        path = self.study_dir / LOCK_FILE
        with path.open("a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "unknown"
                raise StudyBusyError(
                    f"{self.study_dir} is being run by another process (pid {owner}); with the "
                    "journal storage one process runs a study (use --parallel N for more "
                    "workers, or a postgresql:// storage for several machines)"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load_study(self) -> optuna.Study:
        storage = open_storage(self.config)
        study = optuna.create_study(
            storage=storage,
            study_name=self.config.study_name,
            direction=self.config.direction,
            pruner=create_pruner(self.config.pruner, epochs=self.experiment.training.epochs),
            load_if_exists=True,
        )
        if study.direction.name.lower() != self.config.direction:
            raise ConfigurationError(
                f"study {self.config.study_name!r} in its storage was created to "
                f"{study.direction.name.lower()}, but objective {self.config.objective} must "
                f"{self.config.direction}: use another study_dir or name"
            )
        # A resumed sampler with the same seed would replay the first run's early samples.
        existing = len(study.get_trials(deepcopy=False))
        seed = None if self.config.seed is None else self.config.seed + existing
        study.sampler = _create_sampler(self.config, seed)
        return study

    def _requeue_interrupted(self, study: optuna.Study) -> None:
        """Fail trials left running by a killed study process and queue them again."""
        if self.config.storage is not None:
            with _quiet_optuna():
                optuna.storages.fail_stale_trials(study)
            return
        # With the journal storage this process holds the study's lock: whatever is still
        # RUNNING belongs to a process that was killed. (TPE's constant liar would otherwise
        # keep steering away from those parameters forever.)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.add_trial(
                optuna.trial.create_trial(
                    state=TrialState.WAITING,
                    params=trial.params,
                    distributions=trial.distributions,
                    user_attrs={**trial.user_attrs, "requeued_from": trial.number},
                )
            )
            storage = study._storage
            storage.set_trial_user_attr(
                trial._trial_id,
                "failure_reason",
                "interrupted: the study process was stopped while this trial ran; re-queued",
            )
            storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            log.info("trial %d was interrupted: re-queued with the same parameters", trial.number)

    def _counts(self, study: optuna.Study) -> dict[TrialState, int]:
        counts = dict.fromkeys(TrialState, 0)
        for trial in study.get_trials(deepcopy=False):
            counts[trial.state] += 1
        return counts

    def _failures(self, study: optuna.Study) -> int:
        return sum(
            1
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if not t.user_attrs.get("interrupted") and t.system_attrs.get("stale") is None
        )

    def _loop(self, study: optuna.Study) -> None:
        from tqdm import tqdm

        running: list[_Running] = []
        deadline = None if self.config.timeout is None else time.monotonic() + self.config.timeout
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        bar = tqdm(total=self.trials_target, desc="trials", unit="trial", disable=not show)
        last_beat = 0.0
        try:
            while True:
                for job in [j for j in running if j.process.poll() is not None]:
                    running.remove(job)
                    self._conclude(study, job)
                    self._after_trial(study)
                counts = self._counts(study)
                finished = sum(counts[s] for s in _FINISHED)
                self._update_bar(bar, study, counts)
                if self.config.storage is not None and time.monotonic() - last_beat > 1.0:
                    last_beat = time.monotonic()
                    for job in running:
                        study._storage.record_heartbeat(job.trial._trial_id)  # type: ignore[attr-defined]
                    with _quiet_optuna():
                        optuna.storages.fail_stale_trials(study)
                    counts = self._counts(study)
                stop = (
                    finished + counts[TrialState.RUNNING] >= self.trials_target
                    or (deadline is not None and time.monotonic() >= deadline)
                    or self._failures(study) >= self.config.failure_limit
                )
                if not stop and len(running) < self.config.parallel:
                    job_or_none = self._launch(study)
                    if job_or_none is not None:
                        running.append(job_or_none)
                    continue
                if not running:
                    if self._failures(study) >= self.config.failure_limit:
                        log.warning(
                            "stopping: %d trials failed (max_failed_trials); see "
                            "trials.csv and the trials' trial.log",
                            self._failures(study),
                        )
                    break
                time.sleep(0.2)
        finally:
            for job in running:  # an interrupt: the trials stop with us (and are re-queued)
                job.process.kill()
                job.process.wait()
                job.log.close()
            bar.close()

    def _update_bar(self, bar: Any, study: optuna.Study, counts: dict[TrialState, int]) -> None:
        done = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
        bar.n = min(done, self.trials_target)
        postfix = {
            "complete": counts[TrialState.COMPLETE],
            "pruned": counts[TrialState.PRUNED],
            "failed": counts[TrialState.FAIL],
        }
        if counts[TrialState.COMPLETE]:
            postfix["best"] = f"{study.best_value:.4f}"  # type: ignore[assignment]
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    def _launch(self, study: optuna.Study) -> _Running | None:
        trial = study.ask()
        number = trial.number
        directory = self.study_dir / "trials" / f"{number:04d}"
        try:
            values = suggest_values(trial, self.config, self.experiment)
            trial.set_user_attr("values", values)
            config = trial_config(
                self.experiment,
                values,
                number=number,
                output_dir=directory,
                objective=self.config.objective,
            )
        except ConfigurationError as exc:
            trial.set_user_attr("failure_reason", f"invalid configuration: {exc}")
            study.tell(trial, state=TrialState.FAIL)
            return None
        if directory.exists():  # a number reused by a fresh storage: keep nothing stale
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        threads = max(1, (os.cpu_count() or 1) // self.config.parallel)
        job = {
            "study": self.config.model_dump(mode="json"),
            "trial_id": trial._trial_id,
            "number": number,
            "config": json.loads(json.dumps(config.model_dump(mode="json"))),
            "epochs": config.training.epochs,
            "threads": threads,
            "parent_pid": os.getpid(),
        }
        (directory / JOB_FILE).write_text(json.dumps(job, indent=1), encoding="utf-8")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        log_file = (directory / "trial.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "breedclf.tuning._worker", str(directory / JOB_FILE)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.debug("trial %d started (pid %d): %s", number, process.pid, values)
        return _Running(trial, number, process, directory, log_file)

    def _conclude(self, study: optuna.Study, job: _Running) -> None:
        job.log.close()
        result_path = job.directory / RESULT_FILE
        trial = job.trial
        seconds = time.monotonic() - job.started
        if result_path.is_file():
            result = json.loads(result_path.read_text(encoding="utf-8"))
        else:
            code = job.process.returncode
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            tail = _tail(job.directory / "trial.log")
            result = {
                "state": "failed",
                "reason": f"trial process died ({how}){': ' + tail if tail else ''}",
            }
        trial.set_user_attr("epochs", result.get("epochs"))
        trial.set_user_attr("seconds", result.get("seconds", seconds))
        trial.set_user_attr("cached", bool(result.get("cached", False)))
        trial.set_user_attr("output_dir", str(job.directory))
        state = result["state"]
        with _quiet_optuna(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if state == "complete":
                study.tell(trial, float(result["value"]), skip_if_finished=True)
            elif state == "pruned":
                study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
            else:
                trial.set_user_attr("failure_reason", result["reason"])
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        log.info(
            "trial %d %s%s after %s epochs",
            job.number,
            state,
            f" ({self.config.objective}={result['value']:.4f})"
            if result.get("value") is not None
            else f": {result.get('reason')}"
            if state == "failed"
            else "",
            result.get("epochs"),
        )

    # --------------------------------------------------------------------------- outputs

    def _after_trial(self, study: optuna.Study) -> None:
        self._write_trials_csv(study)
        if self.config.keep_models == "best":
            self._drop_models(study)

    def _best(self, study: optuna.Study) -> optuna.trial.FrozenTrial | None:
        try:
            return study.best_trial
        except ValueError:
            return None

    def _drop_models(self, study: optuna.Study) -> None:
        best = self._best(study)
        for trial in study.get_trials(deepcopy=False, states=(*_FINISHED, TrialState.FAIL)):
            if best is not None and trial.number == best.number:
                continue
            directory = self.study_dir / "trials" / f"{trial.number:04d}"
            for part in ("model", "checkpoints"):
                if (directory / part).is_dir():
                    shutil.rmtree(directory / part)

    def _write_trials_csv(self, study: optuna.Study) -> None:
        summaries = _summaries(study)
        paths = list(self.config.parameters)
        columns = [
            "number",
            "state",
            self.config.objective,
            *paths,
            "epochs",
            "seconds",
            "cached",
            "failure_reason",
        ]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for s in summaries:
            writer.writerow(
                [
                    s.number,
                    s.state,
                    "" if s.value is None else repr(s.value),
                    *("" if p not in s.params else _cell(s.params[p]) for p in paths),
                    "" if s.epochs is None else s.epochs,
                    "" if s.seconds is None else f"{s.seconds:.1f}",
                    s.cached,
                    s.failure_reason or "",
                ]
            )
        with atomic_path(self.study_dir / TRIALS_CSV) as tmp:
            tmp.write_text(buffer.getvalue(), encoding="utf-8")

    def _write_outputs(self, study: optuna.Study) -> None:
        self._after_trial(study)
        from breedclf.tuning._report import write_report

        try:
            write_report(study, self.config, self.study_dir / "report.html")
        except Exception as exc:  # the study's results matter more than its pictures
            log.warning("could not write the report: %s", exc)

    def _finish(self, study: optuna.Study) -> BestTrial:
        best = self._best(study)
        if best is None:
            raise BreedclfError(
                f"no trial of {self.config.study_name!r} completed; see "
                f"{self.study_dir / TRIALS_CSV} and the trials' trial.log for the reasons"
            )
        values = best.user_attrs.get("values", best.params)
        config = best_config(self.experiment, values, objective=self.config.objective)
        best_dir = self.study_dir / "best"
        best_dir.mkdir(exist_ok=True)
        config_path = best_dir / "config.yaml"
        dump_config(config, config_path)
        summary = {"number": best.number, "value": best.value, "params": values}
        (best_dir / "trial.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
        source = self.study_dir / "trials" / f"{best.number:04d}" / "model"
        model_dir: Path | None = best_dir / "model"
        assert model_dir is not None
        if source.is_dir():
            if model_dir.exists():
                shutil.rmtree(model_dir)
            shutil.copytree(source, model_dir)
        elif not model_dir.is_dir():
            log.warning(
                "the best trial %d ran on another machine: its model is in that machine's %s",
                best.number,
                source,
            )
            model_dir = None
        test = None
        if self.evaluate_test and model_dir is not None:
            from breedclf.experiment import Experiment

            test = Experiment.from_saved(model_dir, progress=False).evaluate("test")
        value = best.value
        assert value is not None  # a complete single-objective trial has one
        return BestTrial(best.number, value, values, config, config_path, model_dir, test)


def _cell(value: Any) -> str:
    return "null" if value is None else str(value)


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])[-300:]


def _summaries(study: optuna.Study) -> list[TrialSummary]:
    out = []
    for t in study.get_trials(deepcopy=False):
        value = t.value
        if value is None and t.state == TrialState.PRUNED and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        seconds = t.user_attrs.get("seconds")
        out.append(
            TrialSummary(
                number=t.number,
                state=t.state.name,
                value=None if value is None or not math.isfinite(value) else float(value),
                params=dict(t.user_attrs.get("values", t.params)),
                epochs=t.user_attrs.get("epochs"),
                seconds=None if seconds is None else float(seconds),
                failure_reason=t.user_attrs.get("failure_reason"),
                cached=bool(t.user_attrs.get("cached", False)),
            )
        )
    return out


def read_trials(study_dir: str | Path) -> list[dict[str, str]]:
    """The rows of ``study_dir/trials.csv``.

    Raises:
        ConfigurationError: The folder holds no study.
    """
    path = Path(study_dir) / TRIALS_CSV
    if not path.is_file():
        raise ConfigurationError(f"{study_dir} holds no study ({TRIALS_CSV} not found)")
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def tune(config: StudyConfig | str | Path, **kwargs: Any) -> BestTrial:
    """Run (or continue) a study and return its best trial; the notebook form of ``breedclf tune``.

    Args:
        config: A :class:`StudyConfig` or the path of a study file.
        **kwargs: ``progress``, ``evaluate_test`` (see :class:`Study`).

    Example:
        >>> best = tune("examples/tuning/study.yaml")   # doctest: +SKIP
        >>> best.config_path                            # doctest: +SKIP
    """
    study = Study.from_yaml(config, **kwargs) if not isinstance(config, StudyConfig) else None
    return (study or Study(config, **kwargs)).optimize()  # type: ignore[arg-type]
