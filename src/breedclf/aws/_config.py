"""``AwsConfig``: where and on what SageMaker runs breedclf (YAML, like the experiment)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from breedclf.config import BaseConfig, load_config

__all__ = [
    "HOURLY_PRICES_USD",
    "AwsConfig",
    "ServerlessConfig",
    "load_aws_config",
]

#: Approximate SageMaker on-demand prices (USD per instance-hour, us-east-1, list prices of late
#: 2026) used for the cost ceiling printed before anything billable starts. Regions and savings
#: plans differ: set ``hourly_prices`` in the AWS config for exact figures.
HOURLY_PRICES_USD: dict[str, float] = {
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.g4dn.xlarge": 0.736,
    "ml.g4dn.2xlarge": 0.94,
    "ml.g4dn.12xlarge": 4.89,
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.g5.12xlarge": 7.09,
    "ml.p3.2xlarge": 3.825,
    "ml.g6.xlarge": 1.006,
}

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ServerlessConfig(BaseConfig):
    """A serverless endpoint instead of a real-time one (pay per request, cold starts)."""

    memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = 3072
    max_concurrency: Annotated[int, Field(ge=1, le=200)] = 5


class AwsConfig(BaseConfig):
    """Where breedclf runs on SageMaker. Credentials come only from boto3's standard chain.

    Attributes:
        region: AWS region; ``None`` uses boto3's default (``AWS_REGION``, ``~/.aws/config``).
        role: The SageMaker execution role ARN (``arn:aws:iam::123456789012:role/...``).
        bucket: S3 bucket for data, source bundles, checkpoints and models.
        prefix: Key prefix inside the bucket.
        instance_type: Training instance type.
        instance_count: Training instances; more than one needs ``distribution: torchrun``.
        distribution: ``torchrun`` starts one process per GPU on every instance (the PyTorch
            container's torch_distributed launcher); ``none`` runs one process.
        spot: Managed spot training (checkpoints go to S3 and a restarted job resumes).
        max_run_hours: Stop a training job after this long (also the cost ceiling's hours).
        max_wait_hours: Spot only: how long to wait for capacity plus run (default 2 ×
            ``max_run_hours``).
        volume_size_gb: EBS volume of each training instance.
        framework_version: PyTorch version of AWS's Deep Learning Container images.
        py_version: Python version of those images.
        inference_instance_type: Real-time endpoint instance type.
        inference_instance_count: Real-time endpoint instances.
        serverless: A serverless endpoint instead of instances.
        max_endpoint_hours: Hours of endpoint time the printed cost ceiling assumes.
        tags: Tags put on every job, model and endpoint.
        hourly_prices: Prices (USD per instance-hour) overriding :data:`HOURLY_PRICES_USD`.
        debugger_rules: Also run AWS's built-in Debugger rules (only accounts that still have
            SageMaker Debugger; breedclf's own debugger runs inside the job regardless).
        smdebug_hook: Ask SageMaker for smdebug's hook config (needs smdebug in the image).
        profiler: Turn on SageMaker's own Profiler (system metrics); breedclf's profiler runs
            inside the job regardless.
    """

    region: str | None = None
    role: str | None = None
    bucket: str
    prefix: str = "breedclf"
    instance_type: str = "ml.g4dn.xlarge"
    instance_count: PositiveInt = 1
    distribution: Literal["none", "torchrun"] = "none"
    spot: bool = False
    max_run_hours: PositiveFloat = 4.0
    max_wait_hours: PositiveFloat | None = None
    volume_size_gb: PositiveInt = 30
    framework_version: str = "2.6.0"
    py_version: str = "py312"
    inference_instance_type: str = "ml.m5.large"
    inference_instance_count: PositiveInt = 1
    serverless: ServerlessConfig | None = None
    max_endpoint_hours: PositiveFloat = 24.0
    tags: dict[str, str] = Field(default_factory=dict)
    hourly_prices: dict[str, PositiveFloat] = Field(default_factory=dict)
    debugger_rules: bool = False
    smdebug_hook: bool = False
    profiler: bool = False

    @field_validator("role")
    @classmethod
    def _role_arn(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_ARN.match(value):
            raise ValueError(
                f"role must be an IAM role ARN such as arn:aws:iam::123456789012:role/SageMaker, "
                f"got {value!r}"
            )
        return value

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if value.startswith("s3://") or not _BUCKET.match(value):
            raise ValueError(
                f"bucket must be a bare S3 bucket name (3-63 lower-case letters, digits, dots, "
                f"hyphens), got {value!r}"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _clean_prefix(cls, value: str) -> str:
        return value.strip("/")

    @model_validator(mode="after")
    def _check_distribution(self) -> AwsConfig:
        if self.instance_count > 1 and self.distribution == "none":
            raise ValueError(
                f"instance_count {self.instance_count} without distribution would train the same "
                f"model {self.instance_count} times and bill every instance: set distribution: "
                "torchrun (data-parallel training), or instance_count: 1"
            )
        if self.max_wait_hours is not None:
            if not self.spot:
                raise ValueError("max_wait_hours applies to spot training only: set spot: true")
            if self.max_wait_hours < self.max_run_hours:
                raise ValueError(
                    f"max_wait_hours ({self.max_wait_hours}) must be at least max_run_hours "
                    f"({self.max_run_hours})"
                )
        return self

    @property
    def max_run_seconds(self) -> int:
        """``max_run_hours`` in seconds (SageMaker's ``MaxRuntimeInSeconds``)."""
        return round(self.max_run_hours * 3600)

    @property
    def max_wait_seconds(self) -> int:
        """Spot: ``MaxWaitTimeInSeconds`` (default twice the run time)."""
        hours = self.max_wait_hours if self.max_wait_hours is not None else 2 * self.max_run_hours
        return round(hours * 3600)

    def s3_uri(self, *parts: str) -> str:
        """``s3://bucket/prefix/part/...``."""
        keys = [self.prefix, *(p.strip("/") for p in parts)]
        return f"s3://{self.bucket}/" + "/".join(k for k in keys if k)

    def hourly_price(self, instance_type: str) -> float | None:
        """USD per instance-hour of ``instance_type`` (``None`` when unknown)."""
        return self.hourly_prices.get(instance_type, HOURLY_PRICES_USD.get(instance_type))


def load_aws_config(path: str | Path) -> AwsConfig:
    """Load an AWS config YAML file.

    Raises:
        ConfigurationError: The file is missing or invalid (the message names the field).
    """
    return load_config(path, AwsConfig)
