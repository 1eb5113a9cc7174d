"""Hyperparameter tuning: one search space, run locally with Optuna.

A study file names an experiment and a search space keyed by dotted config paths; ``breedclf
tune study.yaml`` (or :func:`tune`) runs trials in worker processes, prunes poor ones, resumes
after a kill, and writes ``trials.csv``, ``best/config.yaml``, ``best/model`` and
``report.html``. See ``docs/tuning.md``.

Example:
    >>> from breedclf.tuning import tune
    >>> best = tune("examples/tuning/study.yaml")   # doctest: +SKIP
    >>> best.value, best.config_path                # doctest: +SKIP
"""

from breedclf.errors import MissingDependencyError

try:
    import optuna as _optuna  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("optuna", "tune", "hyperparameter tuning") from exc

from breedclf.tuning._config import (
    CategoricalParameter,
    ContinuousParameter,
    HyperbandPrunerConfig,
    IntegerParameter,
    MedianPrunerConfig,
    NoPrunerConfig,
    ParameterConfig,
    PrunerConfig,
    StudyConfig,
    SuccessiveHalvingPrunerConfig,
    check_space,
    dump_study_config,
    load_study_config,
    resolve_experiment,
    tunable_paths,
)
from breedclf.tuning._features import CachedFeatureExperiment, uses_feature_cache
from breedclf.tuning._report import write_report
from breedclf.tuning._study import (
    BestTrial,
    Study,
    StudyBusyError,
    TrialSummary,
    read_trials,
    tune,
)
from breedclf.tuning._trial import TrialReporter

__all__ = [
    "BestTrial",
    "CachedFeatureExperiment",
    "CategoricalParameter",
    "ContinuousParameter",
    "HyperbandPrunerConfig",
    "IntegerParameter",
    "MedianPrunerConfig",
    "NoPrunerConfig",
    "ParameterConfig",
    "PrunerConfig",
    "Study",
    "StudyBusyError",
    "StudyConfig",
    "SuccessiveHalvingPrunerConfig",
    "TrialReporter",
    "TrialSummary",
    "check_space",
    "dump_study_config",
    "load_study_config",
    "read_trials",
    "resolve_experiment",
    "tunable_paths",
    "tune",
    "uses_feature_cache",
    "write_report",
]
