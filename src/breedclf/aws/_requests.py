"""The exact SageMaker API requests breedclf sends (what ``--dry-run`` prints).

Pure functions of the configs: no network, no clock (names are passed in). Requests use the API's
own shapes (``CreateTrainingJob``, ``CreateHyperParameterTuningJob``, ``CreateModel``,
``CreateEndpointConfig``, ``CreateEndpoint``), so a printed request is what boto3 sends.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import warnings
from collections.abc import Iterator
from typing import Any

from breedclf.aws._bundle import ENTRY_SCRIPT_NAME, metric_definitions
from breedclf.aws._config import AwsConfig
from breedclf.config import _format_value
from breedclf.errors import ConfigurationError
from breedclf.tuning._config import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    StudyConfig,
)

__all__ = [
    "CHECKPOINT_LOCAL_PATH",
    "STRATEGIES",
    "endpoint_requests",
    "estimate_cost",
    "image_uri",
    "import_sagemaker",
    "job_name",
    "training_job_request",
    "tuning_job_request",
]

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
_SCALING = {"linear": "Linear", "log": "Logarithmic", "reverse_log": "ReverseLogarithmic"}
_OBJECTIVE_METRIC = {
    "valid_acc": ("valid:acc", "Maximize"),
    "valid_loss": ("valid:loss", "Minimize"),
}


def job_name(base: str, stamp: str, *, limit: int = 63) -> str:
    """A SageMaker resource name: ``base-stamp`` cut to ``limit`` characters, ``[a-zA-Z0-9-]``.

    Example:
        >>> job_name("dogs_resnet50", "20261122-0501", limit=32)
        'dogs-resnet50-20261122-0501'
    """
    clean = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-") or "breedclf"
    return f"{clean[: max(1, limit - len(stamp) - 1)].rstrip('-')}-{stamp}"


@contextlib.contextmanager
def _sdk_warnings_ignored() -> Iterator[None]:
    # sagemaker-core's generated shapes.py has invalid escape sequences: a DeprecationWarning
    # (SyntaxWarning from Python 3.12) whenever Python compiles it, nothing a user can act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def import_sagemaker(module: str) -> Any:
    """Import a SageMaker SDK module without its compile-time warnings."""
    with _sdk_warnings_ignored():
        return importlib.import_module(module)


def image_uri(aws: AwsConfig, region: str, *, scope: str, instance_type: str) -> str:
    """AWS's PyTorch Deep Learning Container image for ``scope`` (``training``/``inference``),
    looked up by the SageMaker SDK for ``aws.framework_version`` and ``aws.py_version``."""
    try:
        with _sdk_warnings_ignored():
            image_uris = importlib.import_module("sagemaker.core.image_uris")
            uri: str = image_uris.retrieve(
                framework="pytorch",
                region=region,
                version=aws.framework_version,
                py_version=aws.py_version,
                instance_type=instance_type,
                image_scope=scope,
            )
    except ValueError as exc:
        raise ConfigurationError(
            f"no PyTorch {scope} image for framework_version {aws.framework_version!r}, "
            f"py_version {aws.py_version!r} on {instance_type} in {region}: {exc}"
        ) from None
    return uri


def _hyperparameter(value: str) -> str:
    # Static hyperparameters are JSON-encoded, as the SageMaker SDK sends them: the training
    # toolkit JSON-decodes each value, so the entry point receives exactly this string.
    return json.dumps(value)


def _tags(aws: AwsConfig) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(aws.tags.items())]


def _require_role(aws: AwsConfig) -> str:
    if aws.role is None:
        raise ConfigurationError(
            "role: SageMaker needs an execution role ARN (arn:aws:iam::<account>:role/<name>) "
            "in the AWS config; see docs/aws.md for the permissions it needs"
        )
    return aws.role


def _job_definition(
    aws: AwsConfig,
    *,
    name: str,
    image: str,
    source_uri: str,
    data_uri: str,
    region: str,
    hyperparameters: dict[str, str],
) -> dict[str, Any]:
    """The parts a training job and a tuning job's training-job definition share."""
    static = {
        "sagemaker_program": ENTRY_SCRIPT_NAME,
        "sagemaker_submit_directory": source_uri,
        "sagemaker_region": region,
        "sagemaker_container_log_level": "20",
        "checkpoint-dir": CHECKPOINT_LOCAL_PATH,
    }
    if aws.distribution == "torchrun":
        # The PyTorch container's launcher for torchrun (v3's Torchrun(), v2's
        # distribution={"torch_distributed": {"enabled": True}}).
        static["sagemaker_torch_distributed_enabled"] = "true"
    conflicts = sorted(set(static) & set(hyperparameters))
    if conflicts:
        raise ConfigurationError(f"hyperparameters {conflicts} are reserved by breedclf.aws")
    spot: dict[str, Any] = {"MaxRuntimeInSeconds": aws.max_run_seconds}
    if aws.spot:
        spot["MaxWaitTimeInSeconds"] = aws.max_wait_seconds
    return {
        "HyperParameters": {
            k: _hyperparameter(v) for k, v in {**static, **hyperparameters}.items()
        },
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(),
        },
        "RoleArn": _require_role(aws),
        "InputDataConfig": [
            {
                "ChannelName": "data",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": data_uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": aws.s3_uri("jobs")},
        "ResourceConfig": {
            "InstanceType": aws.instance_type,
            "InstanceCount": aws.instance_count,
            "VolumeSizeInGB": aws.volume_size_gb,
        },
        "StoppingCondition": spot,
        "EnableManagedSpotTraining": aws.spot,
        "CheckpointConfig": {
            "S3Uri": aws.s3_uri("checkpoints", name),
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        },
    }


def training_job_request(
    aws: AwsConfig,
    *,
    name: str,
    image: str,
    source_uri: str,
    data_uri: str,
    region: str,
    hyperparameters: dict[str, str] | None = None,
    debugger_rule_images: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``CreateTrainingJob``: script mode on the PyTorch image, running the source bundle.

    Args:
        aws: Where and how.
        name: The job name (≤ 63 characters).
        image: The training image (:func:`image_uri`).
        source_uri: ``s3://.../sourcedir.tar.gz`` (:func:`~breedclf.aws.write_source_bundle`).
        data_uri: The S3 prefix of the dataset (the ``data`` channel → ``data.root``).
        region: The job's region.
        hyperparameters: Config overrides (dotted keys, ``--set`` values).
        debugger_rule_images: Rule-evaluator image by rule kind (``debugger``, ``profiler``)
            for AWS's built-in rules; needed when ``aws.debugger_rules`` or ``aws.profiler``.
    """
    request: dict[str, Any] = {
        "TrainingJobName": name,
        **_job_definition(
            aws,
            name=name,
            image=image,
            source_uri=source_uri,
            data_uri=data_uri,
            region=region,
            hyperparameters=dict(hyperparameters or {}),
        ),
    }
    request["AlgorithmSpecification"]["EnableSageMakerMetricsTimeSeries"] = True
    outputs = aws.s3_uri("jobs", name, "debug-output")
    images = debugger_rule_images or {}
    if aws.smdebug_hook or aws.debugger_rules:
        request["DebugHookConfig"] = {
            "S3OutputPath": outputs,
            "CollectionConfigurations": [
                {"CollectionName": name, "CollectionParameters": {"save_interval": "50"}}
                for name in ("losses", "gradients")
            ],
        }
    if aws.debugger_rules:
        request["DebugRuleConfigurations"] = [
            {
                "RuleConfigurationName": rule,
                "RuleEvaluatorImage": images["debugger"],
                "RuleParameters": {"rule_to_invoke": rule},
            }
            for rule in ("LossNotDecreasing", "Overfit", "VanishingGradient", "ExplodingTensor")
        ]
    if aws.profiler:
        request["ProfilerConfig"] = {
            "S3OutputPath": aws.s3_uri("jobs", name, "profiler-output"),
            "ProfilingIntervalInMilliseconds": 500,
        }
        request["ProfilerRuleConfigurations"] = [
            {
                "RuleConfigurationName": "ProfilerReport",
                "RuleEvaluatorImage": images["profiler"],
                "RuleParameters": {"rule_to_invoke": "ProfilerReport"},
            }
        ]
    else:
        request["ProfilerConfig"] = {"DisableProfiler": True}
    if aws.tags:
        request["Tags"] = _tags(aws)
    return request


def _parameter_ranges(study: StudyConfig) -> dict[str, list[dict[str, Any]]]:
    ranges: dict[str, list[dict[str, Any]]] = {
        "ContinuousParameterRanges": [],
        "IntegerParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for path, spec in study.parameters.items():
        if isinstance(spec, CategoricalParameter):
            values = [_format_value(v) for v in spec.values]
            ranges["CategoricalParameterRanges"].append({"Name": path, "Values": values})
        elif isinstance(spec, ContinuousParameter | IntegerParameter):
            key = (
                "ContinuousParameterRanges"
                if isinstance(spec, ContinuousParameter)
                else "IntegerParameterRanges"
            )
            ranges[key].append(
                {
                    "Name": path,
                    "MinValue": _format_value(spec.low),
                    "MaxValue": _format_value(spec.high),
                    # The local study's "auto" made concrete, so both search the same scale.
                    "ScalingType": _SCALING[spec.resolved_scaling()],
                }
            )
    return ranges


def default_strategy(study: StudyConfig) -> str:
    """The SageMaker strategy matching the study's sampler and pruner."""
    if study.pruner.name == "hyperband":
        return "Hyperband"
    return {"random": "Random", "grid": "Grid"}.get(study.sampler, "Bayesian")


def tuning_job_request(
    aws: AwsConfig,
    study: StudyConfig,
    *,
    name: str,
    image: str,
    source_uri: str,
    data_uri: str,
    region: str,
    epochs: int,
    strategy: str | None = None,
) -> dict[str, Any]:
    """``CreateHyperParameterTuningJob`` for a study file.

    The study's parameters become ranges with the same scalings, its objective the metric
    ``valid:acc`` (Maximize) or ``valid:loss`` (Minimize), set explicitly; ``trials`` and
    ``parallel`` the job limits; its pruner SageMaker's early stopping (``median`` and
    ``successive_halving`` → ``Auto``, ``none`` → ``Off``, ``hyperband`` → the Hyperband
    strategy, with ``training.epochs`` as its maximum resource).

    Args:
        epochs: The experiment's ``training.epochs`` (Hyperband's maximum resource).
        strategy: ``Bayesian``, ``Random``, ``Hyperband`` or ``Grid``; default from the study.

    Raises:
        ConfigurationError: An unknown strategy, or one the study's space cannot use.
    """
    chosen = strategy or default_strategy(study)
    if chosen not in STRATEGIES:
        raise ConfigurationError(
            f"unknown strategy {chosen!r}; choose one of {', '.join(STRATEGIES)}"
        )
    if chosen == "Grid" and any(
        isinstance(spec, ContinuousParameter) for spec in study.parameters.values()
    ):
        raise ConfigurationError(
            "the Grid strategy needs categorical or integer parameters; list the continuous "
            "ones' values as categorical, or use another strategy"
        )
    metric, direction = _OBJECTIVE_METRIC[study.objective]
    definition = _job_definition(
        aws,
        name=name,
        image=image,
        source_uri=source_uri,
        data_uri=data_uri,
        region=region,
        # Model selection inside each trial uses the tuner's objective too.
        hyperparameters={"training.monitor": study.objective},
    )
    static = definition.pop("HyperParameters")
    definition = {"StaticHyperParameters": static, **definition}
    limits: dict[str, Any] = {"MaxParallelTrainingJobs": study.parallel}
    if chosen != "Grid":  # Grid runs the whole grid
        limits["MaxNumberOfTrainingJobs"] = study.trials
    if study.timeout is not None:
        limits["MaxRuntimeInSeconds"] = max(120, round(study.timeout))
    config: dict[str, Any] = {
        "Strategy": chosen,
        "HyperParameterTuningJobObjective": {"Type": direction, "MetricName": metric},
        "ResourceLimits": limits,
        "ParameterRanges": _parameter_ranges(study),
        "TrainingJobEarlyStoppingType": (
            "Off" if chosen == "Hyperband" or study.pruner.name == "none" else "Auto"
        ),
    }
    if chosen == "Hyperband":
        min_epochs = getattr(study.pruner, "min_epochs", 1)
        config["StrategyConfig"] = {
            "HyperbandStrategyConfig": {"MinResource": min_epochs, "MaxResource": epochs}
        }
    if study.seed is not None and chosen != "Grid":
        config["RandomSeed"] = study.seed
    request: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": definition,
    }
    if aws.tags:
        request["Tags"] = _tags(aws)
    return request


def endpoint_requests(
    aws: AwsConfig, *, name: str, image: str, model_data: str, region: str
) -> list[tuple[str, dict[str, Any]]]:
    """``CreateModel``, ``CreateEndpointConfig`` and ``CreateEndpoint`` for a model.tar.gz.

    The model, config and endpoint share ``name``. The container runs ``code/inference.py``
    (breedclf's handlers) from the archive.
    """
    environment = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_REGION": region,
    }
    tags = {"Tags": _tags(aws)} if aws.tags else {}
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": name}
    if aws.serverless is not None:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": aws.serverless.memory_mb,
            "MaxConcurrency": aws.serverless.max_concurrency,
        }
    else:
        variant["InstanceType"] = aws.inference_instance_type
        variant["InitialInstanceCount"] = aws.inference_instance_count
    return [
        (
            "CreateModel",
            {
                "ModelName": name,
                "ExecutionRoleArn": _require_role(aws),
                "PrimaryContainer": {
                    "Image": image,
                    "ModelDataUrl": model_data,
                    "Environment": environment,
                },
                **tags,
            },
        ),
        (
            "CreateEndpointConfig",
            {"EndpointConfigName": name, "ProductionVariants": [variant], **tags},
        ),
        ("CreateEndpoint", {"EndpointName": name, "EndpointConfigName": name, **tags}),
    ]


def estimate_cost(aws: AwsConfig, *, instance_type: str, count: int, hours: float) -> str:
    """``"ml.g4dn.xlarge × 1 × 4.0 h ≤ $2.94"``, or the same without a price when unknown."""
    price = aws.hourly_price(instance_type)
    head = f"{instance_type} × {count} × {hours:g} h"
    if price is None:
        return f"{head} (no price known for {instance_type}: set hourly_prices in the AWS config)"
    return f"{head} × ${price:g}/h ≤ ${price * count * hours:,.2f}"
