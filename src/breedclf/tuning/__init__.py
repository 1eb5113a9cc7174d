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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from breedclf._lazy import lazy_exports
from breedclf.errors import MissingDependencyError

if TYPE_CHECKING:
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
    from breedclf.tuning._features import (
        CachedFeatureExperiment,
        uses_feature_cache,
    )
    from breedclf.tuning._report import (
        write_report,
    )
    from breedclf.tuning._study import (
        BestTrial,
        Study,
        StudyBusyError,
        TrialSummary,
        read_trials,
        tune,
    )
    from breedclf.tuning._trial import (
        TrialReporter,
    )

_EXPORTS = {
    "CategoricalParameter": "breedclf.tuning._config",
    "ContinuousParameter": "breedclf.tuning._config",
    "HyperbandPrunerConfig": "breedclf.tuning._config",
    "IntegerParameter": "breedclf.tuning._config",
    "MedianPrunerConfig": "breedclf.tuning._config",
    "NoPrunerConfig": "breedclf.tuning._config",
    "ParameterConfig": "breedclf.tuning._config",
    "PrunerConfig": "breedclf.tuning._config",
    "StudyConfig": "breedclf.tuning._config",
    "SuccessiveHalvingPrunerConfig": "breedclf.tuning._config",
    "check_space": "breedclf.tuning._config",
    "dump_study_config": "breedclf.tuning._config",
    "load_study_config": "breedclf.tuning._config",
    "resolve_experiment": "breedclf.tuning._config",
    "tunable_paths": "breedclf.tuning._config",
    "CachedFeatureExperiment": "breedclf.tuning._features",
    "uses_feature_cache": "breedclf.tuning._features",
    "write_report": "breedclf.tuning._report",
    "BestTrial": "breedclf.tuning._study",
    "Study": "breedclf.tuning._study",
    "StudyBusyError": "breedclf.tuning._study",
    "TrialSummary": "breedclf.tuning._study",
    "read_trials": "breedclf.tuning._study",
    "tune": "breedclf.tuning._study",
    "TrialReporter": "breedclf.tuning._trial",
}

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


def _require_optuna() -> None:
    try:
        importlib.import_module("optuna")
    except ImportError as exc:
        raise MissingDependencyError("optuna", "tune", "hyperparameter tuning") from exc


# Names load on first use, so the CLI can register this command without importing torch.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, before=_require_optuna)
