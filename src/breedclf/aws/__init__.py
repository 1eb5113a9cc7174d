"""SageMaker adapters: the experiment, study and saved model a user ran locally, on SageMaker.

* :class:`AwsConfig` — region, role, bucket, instance types, spot, limits, tags (YAML).
* :mod:`breedclf.aws.entry` — the training container's entry point (``SM_*`` variables and
  ``--name value`` hyperparameters become config overrides; calls the same ``run()``).
* :func:`metric_definitions`, :func:`write_source_bundle` — what a job is built from.
* :func:`training_job_request`, :func:`tuning_job_request`, :func:`endpoint_requests` — the exact
  SageMaker API requests (what ``--dry-run`` prints).
* :class:`AwsSession` — sends them (upload, train, tune, deploy, invoke, delete), and
  :func:`deploy` returns an :class:`EndpointPredictor` with ``.predict(image)``.

boto3 and the SageMaker SDK are imported only inside this package, and only by the parts that
talk to AWS; without them (``pip install 'breedclf[aws]'``) those parts raise
:class:`~breedclf.errors.MissingDependencyError`. The config, the bundle and the entry point need
neither.

Example:
    >>> from breedclf.aws import AwsConfig
    >>> aws = AwsConfig(bucket="my-bucket", role="arn:aws:iam::123456789012:role/SageMaker")
    >>> aws.s3_uri("data", "dogImages")
    's3://my-bucket/breedclf/data/dogImages'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from breedclf._lazy import load_attribute
from breedclf.aws._config import HOURLY_PRICES_USD, AwsConfig, ServerlessConfig, load_aws_config

if TYPE_CHECKING:
    from breedclf.aws._bundle import metric_definitions, write_source_bundle
    from breedclf.aws._requests import (
        endpoint_requests,
        training_job_request,
        tuning_job_request,
    )
    from breedclf.aws._session import AwsSession, EndpointPredictor, deploy

__all__ = [
    "HOURLY_PRICES_USD",
    "AwsConfig",
    "AwsSession",
    "EndpointPredictor",
    "ServerlessConfig",
    "deploy",
    "endpoint_requests",
    "load_aws_config",
    "metric_definitions",
    "training_job_request",
    "tuning_job_request",
    "write_source_bundle",
]

_HOMES = {
    "metric_definitions": "_bundle",
    "write_source_bundle": "_bundle",
    "endpoint_requests": "_requests",
    "training_job_request": "_requests",
    "tuning_job_request": "_requests",
    "AwsSession": "_session",
    "EndpointPredictor": "_session",
    "deploy": "_session",
}

#: Top-level modules of the ``aws`` extra; an ImportError naming one means the extra is missing.
AWS_PACKAGES = frozenset({"boto3", "botocore", "sagemaker", "s3transfer"})


def __getattr__(name: str) -> Any:
    value = load_attribute(__name__, _HOMES, name, extra="aws", packages=AWS_PACKAGES)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
