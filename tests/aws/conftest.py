"""A moto server on 127.0.0.1 standing in for AWS, and a guard that only 127.0.0.1 is contacted."""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from breedclf.aws import AwsConfig
from tests.serving.conftest import small_model_dir

__all__ = ["small_model_dir"]  # a saved 3-class model (brick, grass, gravel), shared fixture

REGION = "us-east-1"
BUCKET = "breedclf-test"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"


def _patch_moto() -> None:
    """moto 5.2.5 decodes InvokeEndpoint's body as UTF-8 (an image fails with HTTP 500)."""
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    if getattr(SageMakerRuntimeResponse, "_breedclf_patched", False):
        return
    original = SageMakerRuntimeResponse.invoke_endpoint

    def invoke_endpoint(self: Any) -> Any:
        if isinstance(self.body, bytes):  # keep the bytes, in a JSON-safe form
            self.body = base64.b64encode(self.body).decode("ascii")
        return original(self)

    _patch_moto_tuning()
    SageMakerRuntimeResponse.use_raw_body = True
    setattr(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)  # noqa: B010
    setattr(SageMakerRuntimeResponse, "_breedclf_patched", True)  # noqa: B010


def _patch_moto_tuning() -> None:
    """moto 5.2.5 completes a tuning job at once with a best job whose hyperparameters are
    ``{"string": ...}`` and has no ListTrainingJobsForHyperParameterTuningJob. Stand in for the
    tuner: the best job takes each range's lower end (a categorical's first value), and the
    listing returns it, so ``tune show`` runs end to end on moto (its own tests use Stubber)."""
    from moto.core.responses import ActionResult
    from moto.sagemaker import models
    from moto.sagemaker.responses import SageMakerResponse

    original_init = models.HyperParameterTuningJob.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        ranges = self.hyper_parameter_tuning_job_config.get("ParameterRanges", {})
        tuned = {
            r["Name"]: r["Values"][0] if "Values" in r else r["MinValue"]
            for kind in ranges.values()
            for r in kind
        }
        name = f"{self.hyper_parameter_tuning_job_name}-001-a1b2c3d4"
        self.best_training_job = {
            **self.best_training_job,
            "TrainingJobName": name,
            "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
            "TuningJobName": self.hyper_parameter_tuning_job_name,
            "TunedHyperParameters": tuned,
        }

    def list_trials(self: Any) -> Any:
        name = self._get_param("HyperParameterTuningJobName")
        job = self.sagemaker_backend.describe_hyper_parameter_tuning_job(
            hyper_parameter_tuning_job_name=name
        )
        return ActionResult({"TrainingJobSummaries": [job["BestTrainingJob"]]})

    setattr(models.HyperParameterTuningJob, "__init__", init)  # noqa: B010
    setattr(  # noqa: B010
        SageMakerResponse, "list_training_jobs_for_hyper_parameter_tuning_job", list_trials
    )


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server for the session, on a free port of 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    _patch_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


class Connections:
    """Every address the process connected to while a test ran."""

    def __init__(self) -> None:
        self.addresses: list[str] = []

    def hosts(self) -> set[str]:
        return set(self.addresses)


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connections]:
    """Record every outgoing connection; refuse (and fail the test for) any off 127.0.0.1."""
    seen = Connections()
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6):
            seen.addresses.append(host)
            if not ipaddress.ip_address(host).is_loopback:
                raise ConnectionRefusedError(f"test tried to reach {host}")
        original(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield seen
    assert seen.hosts() <= {"127.0.0.1"}, seen.hosts()


@pytest.fixture
def aws_env(
    moto_url: str,
    connections: Connections,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Connections:
    """Fake credentials, every AWS endpoint on the moto server, a fresh moto state and bucket."""
    home = tmp_path_factory.mktemp("aws-home")
    sdk_config = home / "sagemaker.yaml"
    sdk_config.write_text(
        yaml.safe_dump({"SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}})
    )
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_url,  # botocore sends every service here
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(sdk_config),
    }.items():
        monkeypatch.setenv(key, value)
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"))
    s3().create_bucket(Bucket=BUCKET)
    connections.addresses.clear()
    return connections


def s3() -> Any:
    import boto3

    return boto3.client("s3", region_name=REGION)


def sagemaker() -> Any:
    import boto3

    return boto3.client("sagemaker", region_name=REGION)


def aws_config(**overrides: Any) -> AwsConfig:
    return AwsConfig.model_validate(
        {"region": REGION, "role": ROLE, "bucket": BUCKET, "prefix": "breedclf", **overrides}
    )


def write_aws_config(path: Path, **overrides: Any) -> Path:
    path.write_text(yaml.safe_dump(aws_config(**overrides).model_dump(mode="json")))
    return path


def queue_endpoint_answer(moto_url: str, body: bytes) -> None:
    """What moto's endpoint answers next (moto runs no container)."""
    payload = {
        "account_id": "123456789012",
        "region": REGION,
        "results": [{"Body": body.decode(), "ContentType": "application/json"}],
    }
    request = urllib.request.Request(
        f"{moto_url}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request)


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A ``.tar.gz`` holding ``members`` (name → bytes)."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
