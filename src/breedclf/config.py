"""Typed, frozen experiment configuration.

Every config is a pydantic model with ``frozen=True`` and ``extra="forbid"``: a misspelled key
is an error that names the key and the closest valid one, and an out-of-range value is an error
that names the field. Configs load from and dump to YAML without loss::

    cfg = load_config("experiment.yaml")
    dump_config(cfg, "copy.yaml")
    assert load_config("copy.yaml") == cfg

Derive a variant with :func:`override`, which validates (``model_copy(update=...)`` does not).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, overload

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from breedclf.errors import ConfigurationError

__all__ = [
    "CORE_DEBUGGER_RULES",
    "DEFAULT_DEBUGGER_RULES",
    "AdamWConfig",
    "AugmentConfig",
    "BaseConfig",
    "CallbackSpec",
    "ConstantSchedulerConfig",
    "CosineSchedulerConfig",
    "DataConfig",
    "DebuggerConfig",
    "EarlyStoppingConfig",
    "ExperimentConfig",
    "FreezeConfig",
    "ModelConfig",
    "OneCycleSchedulerConfig",
    "OptimizerConfig",
    "ProfilerConfig",
    "ProfilerRuleConfig",
    "RuleConfig",
    "SGDConfig",
    "SchedulerConfig",
    "SplitConfig",
    "StepSchedulerConfig",
    "TrainingConfig",
    "config_to_dict",
    "dump_config",
    "flatten_config",
    "format_validation_error",
    "load_config",
    "override",
    "parse_value",
    "validate_config",
]

C = TypeVar("C", bound="BaseConfig")


class BaseConfig(BaseModel):
    """Base of every config: immutable, and unknown keys are errors with a suggestion."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        # pydantic's own extra="forbid" message does not suggest the intended key; this one does.
        if isinstance(data, dict):
            valid = set(cls.model_fields)
            for key in data:
                if isinstance(key, str) and key not in valid:
                    close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.5)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    raise ValueError(
                        f"unknown key {key!r} in {cls.__name__}; {hint}"
                        f"valid keys: {', '.join(sorted(valid))}"
                    )
        return data


# --------------------------------------------------------------------------------------- data


class SplitConfig(BaseConfig):
    """How valid/test are carved out of the training folder (stratified, stable per file).

    Used for the splits that have no folder of their own: all of them when the dataset root holds
    class folders directly, a missing ``valid``/``test`` otherwise. Within each class, files are
    ranked by a hash of ``(seed, "<class folder>/<path in it>")``; the first
    ``round(n × valid)`` go to valid, the next ``round(n × test)`` to test (halves round up; at
    least one image per class stays in train). A file's split therefore never depends on other
    classes, and adding or removing one file of a class moves at most 3 other files of that class.
    """

    valid: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    test: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    seed: int = 0

    @model_validator(mode="after")
    def _check_total(self) -> SplitConfig:
        if self.valid + self.test >= 1.0:
            raise ValueError(
                f"valid ({self.valid}) + test ({self.test}) must leave some images for training"
            )
        return self


_Fraction = Annotated[float, Field(gt=0.0, le=1.0)]


class AugmentConfig(BaseConfig):
    """Training-time augmentation; evaluation always uses the model's resize + centre crop."""

    scale: tuple[_Fraction, _Fraction] = (0.25, 1.0)
    """Range of the random crop's area, as fractions of the image."""
    hflip: bool = True
    color_jitter: NonNegativeFloat = 0.0

    @model_validator(mode="after")
    def _check_scale(self) -> AugmentConfig:
        if self.scale[0] > self.scale[1]:
            raise ValueError(f"scale must be (min, max) with min <= max, got {self.scale}")
        return self


class DataConfig(BaseConfig):
    """Where the images are and how they are loaded.

    Attributes:
        dataset: Registered dataset name (``imagefolder``, ``dogimages``, ``textures``, ...).
        root: Dataset root: either ``train/ valid/ test/`` sub-folders of class folders, or
            class folders directly (then ``split`` applies). Optional for datasets that
            materialise themselves (``textures``).
        train_root: Instead of ``root``, a folder of class folders for each split, e.g. the
            SageMaker channels ``/opt/ml/input/data/train``. Class folders are read from here.
        valid_root: Class folders of the validation split (needs ``train_root``); when absent,
            valid is carved out of ``train_root`` with ``split``.
        test_root: Class folders of the test split, like ``valid_root``.
        split: Stratified, stable split carving the splits that have no folder of their own.
        image_size: Override of the model's input size (pixels); ``None`` keeps the model's.
        num_workers: DataLoader worker processes; ``"auto"`` picks from the CPU count.
        augment: Training augmentation.
    """

    dataset: str = "imagefolder"
    root: Path | None = None
    train_root: Path | None = None
    valid_root: Path | None = None
    test_root: Path | None = None
    split: SplitConfig = SplitConfig()
    image_size: PositiveInt | None = None
    num_workers: NonNegativeInt | Literal["auto"] = "auto"
    augment: AugmentConfig = AugmentConfig()

    @model_validator(mode="after")
    def _check_roots(self) -> DataConfig:
        per_split = [
            name
            for name in ("train_root", "valid_root", "test_root")
            if getattr(self, name) is not None
        ]
        if self.root is not None and per_split:
            raise ValueError(
                f"give either root or per-split roots, not both: root is set and so is "
                f"{', '.join(per_split)}; drop root to read each split from its own folder"
            )
        if per_split and self.train_root is None:
            raise ValueError(
                f"{', '.join(per_split)} needs train_root too: the class folders are read from "
                f"the training split"
            )
        return self


# -------------------------------------------------------------------------------------- model


class FreezeConfig(BaseConfig):
    """Which parameters train.

    ``none`` trains everything, ``backbone`` trains only the new head, ``last_n`` trains the head
    and the last ``trainable_stages`` backbone stages.
    """

    policy: Literal["none", "backbone", "last_n"] = "none"
    trainable_stages: NonNegativeInt = 1


class ModelConfig(BaseConfig):
    """Architecture and initial weights.

    The defaults are those of ``breedclf.models.create_model``: pretrained ``"DEFAULT"``
    weights and the architecture's own dropout.

    Attributes:
        name: Registered model name (see ``breedclf.list_models()``).
        weights: ``"DEFAULT"`` (the default: the architecture's recommended pretrained
            variant), a named variant (``"IMAGENET1K_V2"``, see
            ``breedclf.models.list_weights(name)``), a path to a local weights file, or
            ``None`` for random init.
        freeze: Which parameters train.
        dropout: Dropout before the new classification head; ``None`` (the default) keeps
            the architecture's own (``breedclf.models.get_default_dropout(name)``: 0.0 for
            ResNets, 0.2 for EfficientNet-B0/B1 and Lite0, 0.3 for B2/B3, 0.4 for B4).
    """

    name: str = "efficientnet_lite0"
    weights: str | None = "DEFAULT"
    freeze: FreezeConfig = FreezeConfig()
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None


# ---------------------------------------------------------------------------------- optimizer


class _OptimizerBase(BaseConfig):
    lr: PositiveFloat = 1e-3
    backbone_lr: PositiveFloat | None = None
    """Learning rate of the pretrained backbone; ``None`` uses ``lr`` (the head's)."""
    weight_decay: NonNegativeFloat = 0.01


class AdamWConfig(_OptimizerBase):
    """AdamW (decoupled weight decay)."""

    name: Literal["adamw"] = "adamw"
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (
        0.9,
        0.999,
    )
    eps: PositiveFloat = 1e-8


class SGDConfig(_OptimizerBase):
    """SGD with (Nesterov) momentum."""

    name: Literal["sgd"] = "sgd"
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = True
    weight_decay: NonNegativeFloat = 1e-4


OptimizerConfig = Annotated[AdamWConfig | SGDConfig, Field(discriminator="name")]


# ---------------------------------------------------------------------------------- scheduler


class _SchedulerBase(BaseConfig):
    warmup_epochs: NonNegativeFloat = 0.0
    """Linear warm-up from ``warmup_start_factor × lr`` over this many (fractional) epochs."""
    warmup_start_factor: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1


class CosineSchedulerConfig(_SchedulerBase):
    """Cosine decay to ``min_lr_factor × lr`` over the run (after warm-up), stepped per batch."""

    name: Literal["cosine"] = "cosine"
    min_lr_factor: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0


class StepSchedulerConfig(_SchedulerBase):
    """Multiply the learning rate by ``gamma`` every ``step_epochs`` epochs."""

    name: Literal["step"] = "step"
    step_epochs: PositiveInt = 5
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1


class OneCycleSchedulerConfig(BaseConfig):
    """One-cycle policy (warm-up is built in: ``pct_start`` of the run)."""

    name: Literal["onecycle"] = "onecycle"
    pct_start: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.3
    div_factor: PositiveFloat = 25.0
    final_div_factor: PositiveFloat = 1e4


class ConstantSchedulerConfig(_SchedulerBase):
    """Constant learning rate (after the optional warm-up)."""

    name: Literal["none"] = "none"


SchedulerConfig = Annotated[
    CosineSchedulerConfig | StepSchedulerConfig | OneCycleSchedulerConfig | ConstantSchedulerConfig,
    Field(discriminator="name"),
]


# ----------------------------------------------------------------------------------- training


class EarlyStoppingConfig(BaseConfig):
    """Stop when the monitored validation metric has not improved for ``patience`` epochs."""

    patience: PositiveInt = 3
    min_delta: NonNegativeFloat = 0.0


class TrainingConfig(BaseConfig):
    """The training loop.

    Attributes:
        epochs: Number of passes over the training split.
        batch_size: Images per optimizer step.
        amp: Mixed precision. ``auto``: bf16 on CUDA GPUs with bf16 hardware (compute
            capability ≥ 8.0: A100, L4, H100, ...), fp16 with loss scaling on older GPUs (T4,
            V100), off on CPU and MPS. ``bf16`` also runs on CPU (CPU autocast); ``fp16`` needs
            CUDA and is refused elsewhere; ``off`` trains in float32.
        channels_last: Memory format; ``auto`` uses channels_last (faster on CUDA and oneDNN CPUs).
        grad_clip_norm: Clip the global gradient norm to this value; ``None`` disables.
        label_smoothing: Cross-entropy label smoothing.
        monitor: Validation metric used for model selection and early stopping.
        early_stopping: ``None`` disables early stopping.
        seed: Seeds weights of the new head, shuffling, augmentation and dropout; ``0`` to
            ``2**32 - 1`` (the range torch, numpy and ``random`` all accept).
        device: ``auto`` picks CUDA when present, else CPU.
        evaluate_test: Evaluate the test split once, after training, with the selected model.
        distributed: ``auto`` joins the data-parallel job when started by ``torchrun`` (NCCL on
            CUDA, gloo on CPU; ``docs/distributed.md``); ``off`` trains each process alone.
            ``batch_size`` is per process: the global batch is ``batch_size`` × processes.
        sync_batchnorm: Under distributed training on GPUs, BatchNorm statistics over the
            global batch (SyncBatchNorm) instead of each GPU's own; for small per-GPU batches.
    """

    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    grad_clip_norm: PositiveFloat | None = None
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    monitor: Literal["valid_acc", "valid_loss"] = "valid_acc"
    early_stopping: EarlyStoppingConfig | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    device: str = "auto"
    evaluate_test: bool = False
    distributed: Literal["auto", "off"] = "auto"
    sync_batchnorm: bool = False


class CallbackSpec(BaseConfig):
    """A registered callback to add to the run, by name, with its keyword arguments.

    ``name`` is looked up in the callback registry (:func:`breedclf.training.list_callbacks`;
    add yours with ``@register_callback``) when the experiment is built; an unknown name or
    argument is an error naming the closest valid one.
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


# ----------------------------------------------------------------------------------- debugger

#: Collections the debugger can save (``docs/debugger.md``).
DebuggerCollection = Literal[
    "losses",
    "gradients",
    "weights",
    "relu_input",
    "relu_output",
    "tanh_input",
    "sigmoid_input",
    "labels",
    "predictions",
    "inputs",
]

#: SageMaker's core rule set for deep-learning jobs (``docs/debugger.md``).
CORE_DEBUGGER_RULES = (
    "loss_not_decreasing",
    "overfit",
    "overtraining",
    "vanishing_gradient",
    "exploding_tensor",
    "poor_weight_initialization",
)

#: The rules on by default: the core set's rules that catch broken training (NaN/inf, dead
#: gradients, a bad initialisation) and stay quiet on healthy runs. The core set's three
#: convergence rules (loss_not_decreasing, overfit, overtraining) are listed to run: on a
#: converged run they fire by design (``docs/debugger.md``, "The default rules").
DEFAULT_DEBUGGER_RULES = (
    "vanishing_gradient",
    "exploding_tensor",
    "poor_weight_initialization",
)


class RuleConfig(BaseConfig):
    """A debugger rule by its SageMaker ``rule_configs`` name, with parameters and an action.

    ``name`` and ``params`` are checked against the rule registry when the run is built (an
    unknown name or parameter is an error naming the closest valid one).

    Attributes:
        name: ``overfit``, ``vanishing_gradient``, ... (or the class name, ``Overfit``).
        params: The rule's parameters (AWS's names and defaults).
        action: ``log`` or ``stop_training``; ``None`` uses ``debugger.default_action``.
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    action: Literal["log", "stop_training"] | None = None


class DebuggerConfig(BaseConfig):
    """The debugger: rules evaluated during training on a saved trial (``docs/debugger.md``).

    Attributes:
        rules: The rules; by default :data:`DEFAULT_DEBUGGER_RULES` (VanishingGradient,
            ExplodingTensor, PoorWeightInitialization; the last only for a model that does not
            start from pretrained weights). :data:`CORE_DEBUGGER_RULES` lists SageMaker's core
            set.
        default_action: What a rule without its own action does when it fires.
        save_interval: Save every N optimizer steps; ``auto`` saves about 50 times per run
            (every step of runs under 100 steps). AWS's default was 500.
        collection_intervals: Per-collection intervals (``{gradients: 20}``).
        save_tensors: Collections whose full tensors are saved too (safetensors).
        tensor_steps: Steps at which ``save_tensors`` are saved (default: every saved step).
        smdebug_config: A SageMaker debug hook config for smdebug's own hook; by default
            ``/opt/ml/input/config/debughookconfig.json`` when it exists and smdebug is
            installed.
    """

    rules: list[RuleConfig] = Field(
        default_factory=lambda: [RuleConfig(name=name) for name in DEFAULT_DEBUGGER_RULES]
    )
    default_action: Literal["log", "stop_training"] = "log"
    save_interval: PositiveInt | Literal["auto"] = "auto"
    collection_intervals: dict[DebuggerCollection, PositiveInt] = Field(default_factory=dict)
    save_tensors: list[DebuggerCollection] = Field(default_factory=list)
    tensor_steps: list[PositiveInt] | None = None
    smdebug_config: Path | None = None


# ----------------------------------------------------------------------------------- profiler


class ProfilerRuleConfig(BaseConfig):
    """A profiler rule by its SageMaker name (``CPUBottleneck``), with parameters.

    ``ProfilerReport`` runs every rule; its parameters are ``<Rule>_<param>`` overrides
    (``CPUBottleneck_threshold: 60``). Names and parameters are checked against the profiler
    rule registry when the run is built.
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class ProfilerConfig(BaseConfig):
    """The profiler: system monitor, framework metrics, rules and report (``docs/profiler.md``).

    Attributes:
        interval: Seconds between system samples (SageMaker's default 500 ms).
        rules: The profiler rules; by default ``ProfilerReport`` (all of them).
        preset: ``short_run`` shortens the rules' windows and patience for runs of minutes
            (AWS's defaults wait ~8 minutes before most rules look at all) and scans every
            10 s unless ``scan_interval`` is given.
        scan_interval: Seconds of recorded time per rule window (SageMaker: 60).
        trace_steps: ``[start, stop]``: capture these training steps (1-based, inclusive) with
            ``torch.profiler`` into a Chrome/Perfetto trace.
        synchronize: Wait for the GPU around every section, so each section measures its own
            GPU work (slower; to find the slow part, not to measure throughput).
        report: Write ``report.html`` into the run directory when ``run`` ends.
    """

    interval: PositiveFloat = 0.5
    rules: list[ProfilerRuleConfig] = Field(
        default_factory=lambda: [ProfilerRuleConfig(name="ProfilerReport")]
    )
    preset: Literal["default", "short_run"] = "default"
    scan_interval: PositiveFloat = 60.0
    trace_steps: tuple[PositiveInt, PositiveInt] | None = None
    synchronize: bool = False
    report: bool = True

    @model_validator(mode="after")
    def _check_trace_steps(self) -> ProfilerConfig:
        if self.trace_steps is not None and self.trace_steps[0] > self.trace_steps[1]:
            raise ValueError(
                "trace_steps must be [start, stop] with start <= stop, got "
                f"{list(self.trace_steps)}"
            )
        return self


class ExperimentConfig(BaseConfig):
    """Everything needed to reproduce a run: data, model, optimizer, scheduler, training.

    Attributes:
        name: Run name, used in logs and saved-model metadata.
        output_dir: Where the run writes: metrics log, config, split manifest, evaluations.
        checkpoint_dir: Resumable checkpoints (default ``output_dir/checkpoints``); a SageMaker
            job points it at ``/opt/ml/checkpoints`` so spot interruptions resume.
        model_dir: Where the trained model is saved (default ``output_dir/model``; in a
            SageMaker job, ``SM_MODEL_DIR``).
        callbacks: Extra registered callbacks, built in the given order.
        debugger: Debugger rules run during training (on by default with the default rule
            set); ``None`` turns the debugger off.
        profiler: System monitor, framework metrics, profiler rules and ``report.html`` (on
            by default); ``None`` turns the profiler off.
    """

    name: str = "experiment"
    output_dir: Path = Path("runs/experiment")
    checkpoint_dir: Path | None = None
    model_dir: Path | None = None
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = AdamWConfig()
    scheduler: SchedulerConfig = CosineSchedulerConfig()
    training: TrainingConfig = TrainingConfig()
    callbacks: list[CallbackSpec] = Field(default_factory=list)
    debugger: DebuggerConfig | None = Field(default_factory=DebuggerConfig)
    profiler: ProfilerConfig | None = Field(default_factory=ProfilerConfig)


# ------------------------------------------------------------------------------------ helpers


def format_validation_error(exc: ValidationError, source: str | None = None) -> str:
    """One readable line per problem: the dotted field path and the reason."""
    where = f" in {source}" if source else ""
    lines = [f"invalid {exc.title}{where}:"]
    for err in exc.errors():
        loc = ".".join(_user_path(err["loc"])) or "<root>"
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = "" if isinstance(value, dict) or err["type"] == "missing" else f" (got {value!r})"
        lines.append(f"  {loc}: {msg}{shown}")
    return "\n".join(lines)


# Discriminated unions put the member's tag into error paths ("optimizer.adamw.lr"); users
# write "optimizer.lr", so the tag is dropped.
_UNION_FIELDS = {"optimizer", "scheduler"}


def _user_path(loc: tuple[int | str, ...]) -> list[str]:
    parts = [str(p) for p in loc]
    return [p for i, p in enumerate(parts) if not (i > 0 and parts[i - 1] in _UNION_FIELDS)]


def validate_config(cls: type[C], data: Any, source: str | None = None) -> C:
    """Validate ``data`` as ``cls``; raise :class:`ConfigurationError` with a readable message."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(format_validation_error(exc, source)) from None


@overload
def load_config(path: str | Path) -> ExperimentConfig: ...


@overload
def load_config(path: str | Path, cls: type[C]) -> C: ...


def load_config(path: str | Path, cls: type[BaseConfig] = ExperimentConfig) -> BaseConfig:
    """Load a YAML file into a validated config (an :class:`ExperimentConfig` by default).

    Raises:
        ConfigurationError: The file is missing, is not a YAML mapping, or fails validation.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} must contain a YAML mapping, got {type(data).__name__}")
    return validate_config(cls, data, str(path))


def config_to_dict(config: BaseConfig) -> dict[str, Any]:
    """Plain, YAML/JSON-safe dict (paths as strings, tuples as lists), ``name`` keys first."""
    data: dict[str, Any] = _name_first(config.model_dump(mode="json"))
    return data


def _name_first(value: Any) -> Any:
    # Union members put their discriminator last (inherited fields come first); YAML reads better
    # with "name: adamw" on top.
    if isinstance(value, dict):
        ordered = {"name": value["name"]} if "name" in value else {}
        ordered.update({k: _name_first(v) for k, v in value.items() if k != "name"})
        return ordered
    return value


def dump_config(config: BaseConfig, path: str | Path | None = None) -> str:
    """YAML text of ``config``; also written to ``path`` when given."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def parse_value(text: str) -> Any:
    """Read one override value the way ``--set key=value`` does: as a YAML scalar or flow value.

    ``"3e-4"`` → ``3e-4``, ``"null"`` → ``None``, ``"[0.5, 1.0]"`` → a list, ``"sgd"`` → ``"sgd"``.
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _format_value(value: Any) -> str:
    """The inverse of :func:`parse_value`: a string that reads back to ``value``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=2**31 - 1)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def flatten_config(config: BaseConfig, *, base: BaseConfig | None = None) -> dict[str, str]:
    """Dotted ``key: value`` strings of ``config``, read back by :func:`override`.

    This is what a SageMaker job receives as hyperparameters (string values only) and what
    ``--set key=value`` takes. With ``base``, only the values that differ from it are listed
    (SageMaker allows at most 100 hyperparameters), so that
    ``override(base, flatten_config(config, base=base), parse_strings=True) == config``.

    Example:
        >>> from breedclf.config import ExperimentConfig, flatten_config, override
        >>> cfg = override(ExperimentConfig(), {"optimizer.name": "sgd", "optimizer.lr": 0.05})
        >>> flat = flatten_config(cfg, base=ExperimentConfig())
        >>> flat["optimizer.name"], flat["optimizer.lr"]
        ('sgd', '0.05')
        >>> override(ExperimentConfig(), flat, parse_strings=True) == cfg
        True
    """
    flat: dict[str, str] = {}
    reference = config_to_dict(base) if base is not None else _NO_BASE
    _flatten(config_to_dict(config), reference, "", flat, _union_paths(type(config)))
    return flat


def _flatten(
    value: Any, reference: Any, prefix: str, out: dict[str, str], unions: set[str]
) -> None:
    # ``reference`` is the base's value at this path, _NO_BASE (list everything) or _ABSENT.
    if isinstance(value, dict) and value:
        ref = reference if isinstance(reference, dict) else {}
        if prefix[:-1] in unions and ref.get("name", value.get("name")) != value.get("name"):
            ref = {}  # another union member: list all its keys, the tag first
        for key, child in value.items():
            child_ref = _NO_BASE if reference is _NO_BASE else ref.get(key, _ABSENT)
            _flatten(child, child_ref, f"{prefix}{key}.", out, unions)
        return
    if reference is _NO_BASE or reference is _ABSENT or value != reference:
        out[prefix[:-1]] = _format_value(value)


_NO_BASE: Any = object()
_ABSENT: Any = object()


def _union_members(field: Any) -> dict[str, type[BaseConfig]] | None:
    """``{tag: member class}`` of a discriminated-union field, or ``None``."""
    if getattr(field, "discriminator", None) != "name":
        return None
    members: dict[str, type[BaseConfig]] = {}
    for member in get_args(field.annotation):
        if isinstance(member, type) and issubclass(member, BaseConfig):
            tag = get_args(member.model_fields["name"].annotation)
            members[str(tag[0])] = member
    return members


def _union_paths(cls: type[BaseConfig], prefix: str = "") -> set[str]:
    """Dotted paths of the discriminated-union sections under ``cls``."""
    paths: set[str] = set()
    for name, field in cls.model_fields.items():
        if _union_members(field) is not None:
            paths.add(prefix + name)
        else:
            section = _section_class(field, {})
            if section is not None:
                paths |= _union_paths(section, f"{prefix}{name}.")
    return paths


def _section_class(field: Any, node: dict[str, Any]) -> type[BaseConfig] | None:
    """The config class of a section value (the chosen member for unions)."""
    members = _union_members(field)
    if members is not None:
        return members.get(str(node.get("name")))
    for candidate in (field.annotation, *get_args(field.annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseConfig):
            return candidate
    return None


def _switch_member(
    node: dict[str, Any], old: type[BaseConfig] | None, new: type[BaseConfig]
) -> dict[str, Any]:
    """Re-key a union section for member ``new``: keep the shared keys the user changed."""
    old_defaults = config_to_dict(old()) if old is not None else {}
    kept = {
        key: value
        for key, value in node.items()
        if key != "name"
        and key in new.model_fields
        and (key not in old_defaults or value != old_defaults[key])
    }
    return {"name": config_to_dict(new())["name"], **kept}


def _is_tag_path(cls: type[BaseConfig], dotted: str) -> bool:
    *parents, leaf = dotted.split(".")
    if leaf != "name" or not parents:
        return False
    current: type[BaseConfig] | None = cls
    for i, part in enumerate(parents):
        if current is None or part not in current.model_fields:
            return False
        field = current.model_fields[part]
        if i == len(parents) - 1:
            return _union_members(field) is not None
        current = _section_class(field, {})
    return False


def override(
    config: C,
    updates: Mapping[str, Any],
    *,
    source: str | None = None,
    parse_strings: bool = False,
) -> C:
    """A validated copy of ``config`` with ``updates`` merged in.

    Nested keys use dotted paths: ``override(cfg, {"optimizer.lr": 3e-4, "training.epochs": 5})``.
    Setting a union's tag switches the member, whatever the order of ``updates``:
    ``{"optimizer.name": "sgd", "optimizer.momentum": 0.8}`` gives SGD with momentum 0.8; the
    keys the new member shares keep their value if it differed from the old member's default
    (an ``lr`` you chose), the others take the new member's defaults, and keys the new member
    does not have are dropped. Setting a key inside a section that is ``null`` (such as
    ``training.early_stopping.patience``) creates the section with its defaults.

    Args:
        config: The config to start from.
        updates: Dotted keys and values.
        source: Where the updates come from, for error messages.
        parse_strings: Read string values as ``--set`` does (:func:`parse_value`), e.g. SageMaker
            hyperparameters or the output of :func:`flatten_config`.

    Raises:
        ConfigurationError: An unknown key or an invalid value.
    """
    data = config_to_dict(config)
    items = [
        (key, parse_value(value) if parse_strings and isinstance(value, str) else value)
        for key, value in updates.items()
    ]
    cls = type(config)
    # Member switches first, so member-specific keys land in the member they belong to.
    items.sort(key=lambda item: not _is_tag_path(cls, item[0]))
    for dotted, value in items:
        *parents, leaf = dotted.split(".")
        node: dict[str, Any] = data
        current: type[BaseConfig] | None = cls
        for i, part in enumerate(parents):
            field = current.model_fields.get(part) if current is not None else None
            child = node.get(part)
            if child is None and field is not None and _section_class(field, {}) is not None:
                child = node[part] = {}  # a null section comes to life with its defaults
            if not isinstance(child, dict):
                where = ".".join(parents[: i + 1])
                raise ConfigurationError(
                    f"cannot set {dotted!r}: {where!r} is not a section of {cls.__name__}"
                )
            if field is not None and leaf == "name" and i == len(parents) - 1:
                members = _union_members(field)
                if members is not None and value in members and child.get("name") != value:
                    child = node[part] = _switch_member(
                        child, members.get(str(child.get("name"))), members[value]
                    )
            current = _section_class(field, child) if field is not None else None
            node = child
        node[leaf] = value
    return validate_config(cls, data, source)
