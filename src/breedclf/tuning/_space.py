"""From the study's search space to Optuna suggestions and validated trial configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from breedclf.config import ExperimentConfig, override
from breedclf.tuning._config import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    StudyConfig,
    _get,
    _union_of,
    tunable_paths,
)

__all__ = ["best_config", "grid_space", "suggest_values", "trial_config"]


def _is_tag(path: str) -> bool:
    union = _union_of(path)
    return union is not None and path == f"{union}.name"


def suggest_values(
    trial: optuna.Trial, config: StudyConfig, experiment: ExperimentConfig
) -> dict[str, Any]:
    """Ask Optuna for one value per parameter; member-specific ones only for their member.

    Union tags (``optimizer.name``) are suggested first, so ``optimizer.momentum`` is only
    part of the trials that chose ``sgd`` (a conditional search space, which TPE models).
    """
    owners = tunable_paths()
    ordered = sorted(config.parameters, key=lambda p: not _is_tag(p))
    values: dict[str, Any] = {}
    for path in ordered:
        members = owners[path]
        if members:
            union = _union_of(path)
            tag_path = f"{union}.name"
            tag = values.get(tag_path, _get(experiment, tag_path))
            if str(tag) not in members:
                continue
        values[path] = _suggest(trial, path, config.parameters[path])
    return values


def _suggest(
    trial: optuna.Trial,
    path: str,
    spec: ContinuousParameter | IntegerParameter | CategoricalParameter,
) -> Any:
    if isinstance(spec, CategoricalParameter):
        return trial.suggest_categorical(path, spec.values)
    if isinstance(spec, IntegerParameter):
        return trial.suggest_int(path, spec.low, spec.high, log=spec.resolved_scaling() == "log")
    scaling = spec.resolved_scaling()
    if scaling == "reverse_log":
        # Optuna has no reverse-log scale: sample 1 - x on a log scale (dense near high).
        return 1.0 - trial.suggest_float(f"1-{path}", 1.0 - spec.high, 1.0 - spec.low, log=True)
    return trial.suggest_float(path, spec.low, spec.high, log=scaling == "log")


def grid_space(config: StudyConfig) -> dict[str, list[Any]]:
    """The grid of the ``grid`` sampler: categorical values, integer ranges expanded."""
    space: dict[str, list[Any]] = {}
    for path, spec in config.parameters.items():
        if isinstance(spec, CategoricalParameter):
            space[path] = list(spec.values)
        elif isinstance(spec, IntegerParameter):
            space[path] = list(range(spec.low, spec.high + 1))
    return space


def grid_size(config: StudyConfig) -> int:
    """Number of points of :func:`grid_space` (member-specific ones counted fully)."""
    size = 1
    for values in grid_space(config).values():
        size *= len(values)
    return size


def trial_config(
    experiment: ExperimentConfig,
    values: dict[str, Any],
    *,
    number: int,
    output_dir: Path,
    objective: str,
) -> ExperimentConfig:
    """The trial's experiment: the values, its own output dir, selection on the objective.

    Built with :func:`~breedclf.config.override` (validated). Test evaluation is off: the
    objective is validation-only and test is evaluated once, for the best trial.
    """
    return override(
        experiment,
        {
            **values,
            "name": f"{experiment.name}-trial-{number:04d}",
            "output_dir": str(output_dir),
            "checkpoint_dir": None,
            "model_dir": None,
            "training.evaluate_test": False,
            "training.monitor": objective,
        },
        source=f"trial {number}",
    )


def best_config(
    experiment: ExperimentConfig, values: dict[str, Any], *, objective: str
) -> ExperimentConfig:
    """The best trial's values applied to the experiment as the user wrote it (trainable as is)."""
    return override(experiment, {**values, "training.monitor": objective}, source="best trial")
