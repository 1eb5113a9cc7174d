"""The study file: search space, objective, sampler, pruner, storage and budget."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from breedclf.config import (
    BaseConfig,
    ExperimentConfig,
    load_config,
    override,
    validate_config,
)
from breedclf.errors import ConfigurationError

__all__ = [
    "CategoricalParameter",
    "ContinuousParameter",
    "HyperbandPrunerConfig",
    "IntegerParameter",
    "MedianPrunerConfig",
    "NoPrunerConfig",
    "ParameterConfig",
    "PrunerConfig",
    "StudyConfig",
    "SuccessiveHalvingPrunerConfig",
    "check_space",
    "dump_study_config",
    "load_study_config",
    "resolve_experiment",
    "tunable_paths",
]

Scaling = Literal["linear", "log", "reverse_log", "auto"]

# ------------------------------------------------------------------------------ parameters


class ContinuousParameter(BaseConfig):
    """A float range, as SageMaker's ``ContinuousParameter``.

    ``scaling``: ``linear``; ``log`` (needs ``low > 0``); ``reverse_log`` (more samples near
    ``high``, for values in ``[0, 1)`` such as momentum); ``auto`` is ``log`` when ``low > 0``
    and the range spans at least two decades (``high / low >= 100``), else ``linear``.
    """

    type: Literal["continuous"] = "continuous"
    low: float
    high: float
    scaling: Scaling = "auto"

    @model_validator(mode="after")
    def _check_range(self) -> ContinuousParameter:
        _check_bounds(self.low, self.high, self.scaling)
        if self.scaling == "reverse_log" and not (self.low >= 0 and self.high < 1):
            raise ValueError(
                f"scaling reverse_log needs 0 <= low < high < 1 (as SageMaker's "
                f"ReverseLogarithmic), got low={self.low}, high={self.high}"
            )
        return self

    def resolved_scaling(self) -> Literal["linear", "log", "reverse_log"]:
        """``auto`` made concrete (see the class docstring)."""
        if self.scaling != "auto":
            return self.scaling
        return "log" if self.low > 0 and self.high / self.low >= 100 else "linear"


class IntegerParameter(BaseConfig):
    """An integer range (both ends included), as SageMaker's ``IntegerParameter``.

    ``scaling`` ``log`` needs ``low >= 1``; ``reverse_log`` is for continuous ranges only.
    """

    type: Literal["integer"] = "integer"
    low: int
    high: int
    scaling: Literal["linear", "log", "auto"] = "auto"

    @model_validator(mode="after")
    def _check_range(self) -> IntegerParameter:
        _check_bounds(self.low, self.high, self.scaling)
        return self

    def resolved_scaling(self) -> Literal["linear", "log"]:
        """``auto`` is ``log`` when ``low >= 1`` and ``high / low >= 100``, else ``linear``."""
        if self.scaling != "auto":
            return self.scaling
        return "log" if self.low >= 1 and self.high / self.low >= 100 else "linear"


class CategoricalParameter(BaseConfig):
    """A list of values, as SageMaker's ``CategoricalParameter``."""

    type: Literal["categorical"] = "categorical"
    values: list[str | int | float | bool | None] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: list[Any]) -> list[Any]:
        seen = [yaml.safe_dump(v) for v in values]
        if len(set(seen)) != len(seen):
            raise ValueError(f"values must be distinct, got {values}")
        return values


def _check_bounds(low: float, high: float, scaling: str) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"low and high must be finite numbers, got low={low}, high={high}")
    if low >= high:
        raise ValueError(f"low must be below high, got low={low}, high={high}")
    if scaling == "log" and low <= 0:
        raise ValueError(f"scaling log needs low > 0, got low={low}")


ParameterConfig = Annotated[
    ContinuousParameter | IntegerParameter | CategoricalParameter, Field(discriminator="type")
]

# --------------------------------------------------------------------------------- pruners


class MedianPrunerConfig(BaseConfig):
    """Stop a trial whose best validation value so far is worse than the median of earlier
    trials at the same epoch (Optuna's ``MedianPruner``).

    Attributes:
        warmup_epochs: Epochs of every trial that are never pruned.
        startup_trials: Trials that finish unpruned before pruning starts.
    """

    name: Literal["median"] = "median"
    warmup_epochs: NonNegativeInt = 1
    startup_trials: NonNegativeInt = 5


class SuccessiveHalvingPrunerConfig(BaseConfig):
    """Asynchronous successive halving (ASHA, Optuna's ``SuccessiveHalvingPruner``)."""

    name: Literal["successive_halving"] = "successive_halving"
    min_epochs: PositiveInt = 1
    reduction_factor: Annotated[int, Field(ge=2)] = 3


class HyperbandPrunerConfig(BaseConfig):
    """Hyperband (Optuna's ``HyperbandPruner``); the maximum resource is ``training.epochs``."""

    name: Literal["hyperband"] = "hyperband"
    min_epochs: PositiveInt = 1
    reduction_factor: Annotated[int, Field(ge=2)] = 3


class NoPrunerConfig(BaseConfig):
    """Every trial runs all its epochs."""

    name: Literal["none"] = "none"


PrunerConfig = Annotated[
    MedianPrunerConfig | SuccessiveHalvingPrunerConfig | HyperbandPrunerConfig | NoPrunerConfig,
    Field(discriminator="name"),
]

# ----------------------------------------------------------------------------------- study

_OBJECTIVES = ("valid_acc", "valid_loss")
# Set by the tuner for every trial; tuning them would be meaningless or unsafe.
_RESERVED = ("name", "output_dir", "checkpoint_dir", "model_dir", "callbacks")
_RESERVED_LEAVES = ("training.evaluate_test", "training.monitor")


class StudyConfig(BaseConfig):
    """A hyperparameter study: which experiment, which space, how to search and where to write.

    Attributes:
        experiment: The experiment to tune: a YAML path (relative paths are read from the
            study file's folder by :func:`load_study_config`) or an inline mapping.
        study_dir: Where the study writes its storage, trials, best config/model and report.
        name: Study name in the storage (default: the name of ``study_dir``).
        objective: ``valid_acc`` (maximised) or ``valid_loss`` (minimised); always on the
            validation split, never test.
        trials: Finished trials (complete or pruned) to reach.
        parallel: Trials run at once on this machine, each in its own process.
        timeout: Stop starting trials after this many seconds (running ones finish).
        sampler: ``tpe``, ``random``, ``grid`` (categorical/integer parameters only), ``gp``,
            ``cmaes``.
        pruner: Early stopping of poor trials (validation reported every epoch).
        storage: ``None``: a journal file inside ``study_dir`` (one machine); or a database URL
            (``postgresql://user@host/db``) that workers on several machines share.
        seed: Seed of the sampler (``None``: random).
        keep_models: ``best`` keeps only the best trial's model and checkpoints; ``all`` keeps
            every trial's.
        cache_features: Train trials with a frozen backbone and no augmentation on cached
            backbone features (same model, much faster).
        max_failed_trials: Stop when this many trials failed (default: ``trials``), so a broken
            experiment cannot loop forever.
        parameters: The search space, keyed by dotted experiment-config paths.
    """

    experiment: Path | dict[str, Any]
    study_dir: Path
    name: str | None = None
    objective: Literal["valid_acc", "valid_loss"] = "valid_acc"
    trials: PositiveInt = 20
    parallel: PositiveInt = 1
    timeout: PositiveFloat | None = None
    sampler: Literal["tpe", "random", "grid", "gp", "cmaes"] = "tpe"
    pruner: PrunerConfig = MedianPrunerConfig()
    storage: str | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    keep_models: Literal["best", "all"] = "best"
    cache_features: bool = True
    max_failed_trials: PositiveInt | None = None
    parameters: dict[str, ParameterConfig] = Field(min_length=1)

    @field_validator("objective", mode="before")
    @classmethod
    def _validation_only(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in _OBJECTIVES:
            if "test" in value:
                raise ValueError(
                    f"objective {value!r} reads the test split: tuning on the test set makes "
                    "its accuracy a biased estimate. Use valid_acc or valid_loss (the test split "
                    "is evaluated once, for the best trial, with --evaluate-test)"
                )
            raise ValueError(f"objective must be valid_acc or valid_loss, got {value!r}")
        return value

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith("sqlite"):
            raise ValueError(
                "SQLite cannot serve parallel workers (they fail with 'database is locked'); "
                "leave storage null for a journal file in study_dir (one machine), or use "
                "postgresql://... (several machines)"
            )
        if "://" not in value:
            raise ValueError(
                f"storage must be a database URL such as postgresql://user@host/db, got {value!r}"
            )
        return value

    @field_validator("parameters")
    @classmethod
    def _paths_shape(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path in value:
            if path in _RESERVED or path in _RESERVED_LEAVES or path.startswith("callbacks."):
                raise ValueError(
                    f"parameter {path!r} is set by the tuner for every trial and cannot be tuned"
                )
        return value

    @model_validator(mode="after")
    def _check_sampler(self) -> StudyConfig:
        if self.sampler == "grid":
            ranged = [p for p, spec in self.parameters.items() if spec.type == "continuous"]
            if ranged:
                raise ValueError(
                    f"sampler grid needs categorical or integer parameters (as SageMaker's Grid "
                    f"strategy); {', '.join(ranged)} is continuous: list its values as categorical"
                )
        return self

    @property
    def study_name(self) -> str:
        """Name of the study in its storage."""
        return self.name or Path(self.study_dir).resolve().name

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        """``maximize`` for accuracy, ``minimize`` for loss."""
        return "maximize" if self.objective == "valid_acc" else "minimize"

    @property
    def failure_limit(self) -> int:
        """Failed trials after which the study stops."""
        return self.max_failed_trials or self.trials


def load_study_config(path: str | Path) -> StudyConfig:
    """Load a study file; a relative ``experiment`` path is read from the study file's folder.

    Raises:
        ConfigurationError: The file is missing, not a YAML mapping, or invalid.
    """
    path = Path(path)
    config = load_config(path, StudyConfig)
    if isinstance(config.experiment, Path) and not config.experiment.is_absolute():
        config = config.model_copy(update={"experiment": path.parent / config.experiment})
    return config


def dump_study_config(config: StudyConfig, path: str | Path | None = None) -> str:
    """YAML text of a study config (read back by :func:`load_study_config`)."""
    data = config.model_dump(mode="json", exclude_none=False)
    text = yaml.safe_dump(data, sort_keys=False)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def resolve_experiment(config: StudyConfig) -> ExperimentConfig:
    """The experiment the study tunes (loaded from its file, or validated inline).

    Raises:
        ConfigurationError: The file is missing or the experiment is invalid.
    """
    if isinstance(config.experiment, Path):
        return load_config(config.experiment)
    return validate_config(ExperimentConfig, config.experiment, "the study's inline experiment")


# -------------------------------------------------------------------------- space checking


@dataclass(frozen=True)
class _Leaf:
    """A tunable field: its dotted path and, inside a union section, which members have it."""

    path: str
    union: str | None  # dotted path of the union section holding it
    members: frozenset[str]  # tags of the members that have it (empty outside unions)


def _union_members(field: Any) -> dict[str, type[BaseConfig]] | None:
    if getattr(field, "discriminator", None) != "name":
        return None
    members: dict[str, type[BaseConfig]] = {}
    for member in get_args(field.annotation):
        if isinstance(member, type) and issubclass(member, BaseConfig):
            members[str(get_args(member.model_fields["name"].annotation)[0])] = member
    return members


def _section(field: Any) -> type[BaseConfig] | None:
    for candidate in (field.annotation, *get_args(field.annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseConfig):
            return candidate
    return None


def _walk(cls: type[BaseConfig], prefix: str = "") -> Iterator[_Leaf]:
    for name, field in cls.model_fields.items():
        path = prefix + name
        members = _union_members(field)
        if members is not None:
            owners: dict[str, set[str]] = {}
            for tag, member in members.items():
                for leaf in _walk(member, path + "."):
                    owners.setdefault(leaf.path, set()).add(tag)
            for leaf_path, tags in owners.items():
                union_tags = frozenset(tags) if len(tags) < len(members) else frozenset()
                yield _Leaf(leaf_path, path, union_tags)
            continue
        section = _section(field)
        if section is not None:
            yield from _walk(section, path + ".")
        else:
            yield _Leaf(path, None, frozenset())


def tunable_paths() -> dict[str, frozenset[str]]:
    """Every dotted experiment-config path a study may tune, with the union members that own it.

    An empty set means the field exists whatever the member (``optimizer.lr``); otherwise only
    those members have it (``optimizer.momentum``: ``{"sgd"}``).
    """
    return {
        leaf.path: leaf.members
        for leaf in _walk(ExperimentConfig)
        if leaf.path not in _RESERVED
        and leaf.path not in _RESERVED_LEAVES
        and not leaf.path.startswith("callbacks")
    }


def _union_of(path: str) -> str | None:
    for leaf in _walk(ExperimentConfig):
        if leaf.path == path:
            return leaf.union
    return None


def check_space(config: StudyConfig, experiment: ExperimentConfig) -> None:
    """Check every parameter against the experiment before any trial runs.

    A path that does not exist is an error naming the closest valid path; a bound or value the
    field refuses (``optimizer.lr`` low 0) is an error naming the field's constraint; a
    member-specific parameter (``optimizer.momentum``) needs its member, either in the
    experiment or among the values of the union's tag parameter (``optimizer.name``).

    Raises:
        ConfigurationError: The first problem found, with its fix.
    """
    valid = tunable_paths()
    for path, spec in config.parameters.items():
        if path not in valid:
            close = difflib.get_close_matches(path, sorted(valid), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(
                f"parameters.{path}: no such experiment-config path{hint} (see `breedclf config` "
                "for the valid keys)"
            )
        members = valid[path]
        fixed: dict[str, Any] = {}
        if members:
            union = _union_of(path)
            assert union is not None  # a member-specific path is always inside a union
            tag_path = f"{union}.name"
            tag_spec = config.parameters.get(tag_path)
            candidates = (
                [str(v) for v in tag_spec.values]
                if isinstance(tag_spec, CategoricalParameter)
                else [str(_get(experiment, tag_path))]
            )
            usable = [tag for tag in candidates if tag in members]
            if not usable:
                where = (
                    f"the values of {tag_path} ({', '.join(candidates)})"
                    if tag_spec is not None
                    else f"the experiment's {tag_path}={candidates[0]}"
                )
                raise ConfigurationError(
                    f"parameters.{path} exists only for {tag_path} = "
                    f"{' or '.join(sorted(members))}, and {where} does not include it: add "
                    f"{' or '.join(sorted(members))} to {tag_path}, or drop {path}"
                )
            fixed[tag_path] = usable[0]
        for label, value in _probe_values(spec):
            try:
                override(experiment, {**fixed, path: value})
            except ConfigurationError as exc:
                reason = str(exc).split("\n", 1)[-1].strip()
                raise ConfigurationError(
                    f"parameters.{path}: {label}={value!r} is outside what the field accepts "
                    f"({reason}); narrow the range"
                ) from None


def _probe_values(spec: ContinuousParameter | IntegerParameter | CategoricalParameter) -> Any:
    if isinstance(spec, CategoricalParameter):
        return [("value", v) for v in spec.values]
    probes: list[tuple[str, Any]] = [("low", spec.low), ("high", spec.high)]
    if isinstance(spec, ContinuousParameter):  # an integer field refuses fractional values
        probes.append(("a value inside the range", spec.low + (spec.high - spec.low) * 0.37))
    return probes


def _get(config: BaseConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value
