"""The SageMaker training container's entry point: ``python -m breedclf.aws.entry``.

This is the only place in breedclf that reads ``SM_*`` variables and parses command-line
``--name value`` pairs. It works under the sagemaker-training toolkit's script mode (which tuning
jobs use: ``sagemaker_program``, string-valued hyperparameters passed as ``--name value``) and
under any driver that passes hyperparameters the same way or only through ``SM_HPS``.

What it does, in order:

1. reads the experiment YAML shipped in the source bundle (``--config``, default
   ``config.yaml`` beside the bundle's script);
2. applies every hyperparameter as a config override through :func:`breedclf.config.override`
   (``--optimizer.lr 3e-4``): a misspelled name fails the job with the closest valid name,
   nothing is silently ignored;
3. points the data at the job's channels (``data`` → ``data.root``; ``train``/``valid``/``test``
   → per-split roots), the run directory at ``SM_OUTPUT_DATA_DIR`` (metrics, report, debugger
   findings: uploaded as ``output.tar.gz``), the model at ``SM_MODEL_DIR`` and checkpoints at
   ``--checkpoint-dir`` (``/opt/ml/checkpoints``, synchronised with S3, so a spot restart
   resumes; one sub-folder per ``TRAINING_JOB_NAME``, as the trials of a tuning job share it);
4. calls the same :func:`breedclf.experiment.run` as ``breedclf train``, with
   ``resume="auto"``;
5. adds the inference code of ``breedclf package`` (``code/inference.py``,
   ``code/requirements.txt``, ``code/breedclf``) beside the saved model, so the job's own
   ``model.tar.gz`` deploys as is.

The metric lines it prints are the documented ``epoch=N split=valid loss=... acc=...`` lines;
:func:`breedclf.aws.metric_definitions` builds the job's regexes from
:data:`breedclf.training.METRIC_LINE_REGEX`.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ENTRY_OPTIONS", "EntryArguments", "build_config", "main", "parse_arguments"]

#: Arguments that configure the entry point itself rather than the experiment.
ENTRY_OPTIONS = ("config", "checkpoint-dir")

DEFAULT_CHECKPOINT_DIR = "/opt/ml/checkpoints"


@dataclass(frozen=True)
class EntryArguments:
    """The parsed ``--name value`` pairs: entry-point options and experiment overrides."""

    config: Path | None = None
    checkpoint_dir: Path | None = None
    overrides: dict[str, str] = field(default_factory=dict)


def parse_arguments(argv: Sequence[str]) -> EntryArguments:
    """Parse ``--name value`` (or ``--name=value``) pairs strictly: every name is kept.

    Names the toolkit reserves (``sagemaker_*``) are skipped. Unlike ``parse_known_args``,
    nothing is dropped: every other name becomes a config override, checked by
    :func:`breedclf.config.override`.

    Raises:
        ConfigurationError: A token that is not ``--name`` followed by its value.

    Example:
        >>> parse_arguments(["--optimizer.lr", "0.001", "--checkpoint-dir", "/ckpt"]).overrides
        {'optimizer.lr': '0.001'}
    """
    from breedclf.errors import ConfigurationError

    pairs: dict[str, str] = {}
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            raise ConfigurationError(
                f"unexpected argument {token!r}: the entry point takes --name value pairs "
                "(hyperparameters), e.g. --optimizer.lr 0.001"
            )
        name, sep, value = token[2:].partition("=")
        if not sep:
            if i + 1 >= len(tokens):
                raise ConfigurationError(f"--{name} has no value")
            value = tokens[i + 1]
            i += 1
        i += 1
        if name.startswith("sagemaker_"):
            continue
        pairs[name] = value
    config = pairs.pop("config", None)
    checkpoint_dir = pairs.pop("checkpoint-dir", pairs.pop("checkpoint_dir", None))
    return EntryArguments(
        config=Path(config) if config else None,
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
        overrides=pairs,
    )


def _hyperparameters_from_env(environ: Mapping[str, str]) -> list[str]:
    """``SM_HPS`` as ``--name value`` tokens (for drivers that pass no arguments)."""
    raw = environ.get("SM_HPS")
    if not raw:
        return []
    values = json.loads(raw)
    tokens: list[str] = []
    for name, value in sorted(values.items()):
        text = value if isinstance(value, str) else json.dumps(value)
        tokens += [f"--{name}", text]
    return tokens


def _channel_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Data roots from the job's input channels (``SM_CHANNEL_<NAME>``)."""
    channels = {
        key.removeprefix("SM_CHANNEL_").lower(): value
        for key, value in environ.items()
        if key.startswith("SM_CHANNEL_")
    }
    if "data" in channels:
        return {
            "data.root": channels["data"],
            "data.train_root": None,
            "data.valid_root": None,
            "data.test_root": None,
        }
    if "train" in channels:
        valid = channels.get("valid", channels.get("validation"))
        return {
            "data.root": None,
            "data.train_root": channels["train"],
            "data.valid_root": valid,
            "data.test_root": channels.get("test"),
        }
    return {}


def build_config(
    arguments: EntryArguments, environ: Mapping[str, str], *, default_config: Path | None = None
) -> Any:
    """The experiment the job runs: the shipped YAML, the hyperparameters, the job's paths.

    Raises:
        ConfigurationError: No config file, or a hyperparameter that is not a config field
            (the message names the closest valid one) or has an invalid value.
    """
    from breedclf.config import ExperimentConfig, load_config, override
    from breedclf.errors import ConfigurationError

    path = arguments.config or default_config
    if path is None:
        raise ConfigurationError(
            "no experiment config: pass --config PATH (the source bundle ships config.yaml)"
        )
    config: ExperimentConfig = load_config(path)
    config = override(
        config, arguments.overrides, source="the job's hyperparameters", parse_strings=True
    )
    paths: dict[str, Any] = dict(_channel_overrides(environ))
    output = environ.get("SM_OUTPUT_DATA_DIR")
    if output:
        paths["output_dir"] = output
    model = environ.get("SM_MODEL_DIR")
    if model:
        paths["model_dir"] = model
    checkpoint = arguments.checkpoint_dir or (
        Path(DEFAULT_CHECKPOINT_DIR) if environ.get("SM_TRAINING_ENV") else None
    )
    if checkpoint is not None:
        # Trials of a tuning job share one checkpoint S3 prefix: each job keeps its own folder
        # (a spot restart keeps its job name, so it still finds its checkpoint).
        job = environ.get("TRAINING_JOB_NAME")
        paths["checkpoint_dir"] = str(checkpoint / job if job else checkpoint)
    return override(config, paths, source="the job's environment")


def add_inference_code(model_dir: Path) -> None:
    """Write ``breedclf package``'s inference layout into ``model_dir`` (beside the model)."""
    from breedclf.serving import package_model

    with tempfile.TemporaryDirectory() as tmp:
        archive = package_model(model_dir, Path(tmp) / "model.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(model_dir, filter="data")


def main(argv: Sequence[str] | None = None, *, default_config: Path | None = None) -> int:
    """Run the job; returns the process exit code (0, or 2 for a configuration error).

    Args:
        argv: The arguments (default ``sys.argv[1:]``, or ``SM_HPS`` when there are none).
        default_config: The experiment YAML when ``--config`` is not given.
    """
    from breedclf.errors import BreedclfError
    from breedclf.experiment import Experiment, ensure_logging, run

    environ = dict(os.environ)
    tokens = list(sys.argv[1:] if argv is None else argv)
    if not tokens:
        tokens = _hyperparameters_from_env(environ)
    ensure_logging()
    try:
        arguments = parse_arguments(tokens)
        config = build_config(arguments, environ, default_config=default_config)
        result = run(Experiment(config, progress=False), resume="auto")
        if environ.get("RANK", "0") == "0":  # under torchrun, one process writes the package
            add_inference_code(result.model_dir)
    except BreedclfError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        _write_failure(environ, str(exc))
        return 2
    print(f"breedclf: model and inference code written to {result.model_dir}", flush=True)
    return 0


def _write_failure(environ: Mapping[str, str], message: str) -> None:
    """SageMaker shows ``/opt/ml/output/failure`` as the job's FailureReason."""
    output = environ.get("SM_OUTPUT_DIR")
    if output and Path(output).is_dir():
        (Path(output) / "failure").write_text(message[:1024], encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
