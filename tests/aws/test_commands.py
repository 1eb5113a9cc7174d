"""``breedclf aws ...`` against a moto server on 127.0.0.1 (botocore's Stubber where moto lacks
an operation). Every test asserts, through the ``connections`` guard, that nothing but
127.0.0.1 was contacted."""

from __future__ import annotations

import io
import json
import shlex
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from breedclf.aws import AwsSession, metric_definitions
from breedclf.cli import app
from breedclf.config import ExperimentConfig, dump_config, load_config, override
from breedclf.errors import ConfigurationError
from tests.aws.conftest import (
    BUCKET,
    ROLE,
    Connections,
    aws_config,
    s3,
    sagemaker,
    write_aws_config,
)

runner = CliRunner()


def cli(command: str) -> Any:
    """Run ``breedclf COMMAND`` in-process (library errors stay in ``result.exception``)."""
    return runner.invoke(app, shlex.split(command), catch_exceptions=True)


def ok(command: str) -> str:
    result = cli(command)
    assert result.exit_code == 0, (result.output, result.exception)
    return str(result.output)


def printed(output: str, operation: str) -> dict[str, Any]:
    """The request a command printed before sending it (a JSON object after its name)."""
    text = output.split(f"{operation} ", 1)[1]
    request, _ = json.JSONDecoder().raw_decode(text)
    assert isinstance(request, dict)
    return request


def keys(prefix: str) -> dict[str, int]:
    pages = s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


@pytest.fixture
def aws_yaml(tmp_path: Path) -> Path:
    return write_aws_config(tmp_path / "aws.yaml", spot=True, tags={"project": "dogs"})


@pytest.fixture
def experiment_yaml(tmp_path: Path) -> Path:
    config = override(
        ExperimentConfig(),
        {"name": "dogs", "data.image_size": 32, "training.epochs": 2, "training.batch_size": 16},
    )
    dump_config(config, tmp_path / "experiment.yaml")
    return tmp_path / "experiment.yaml"


# ------------------------------------------------------------------------------------ upload


def test_upload_is_resumable_and_skips_what_is_there(
    aws_env: Connections, aws_yaml: Path, textures_root: Path
) -> None:
    local = sorted(p for p in textures_root.rglob("*") if p.is_file())
    dry = ok(f"aws upload {textures_root} --aws {aws_yaml} --name tex --dry-run")
    assert dry.count("PutObject s3://") == len(local)
    assert aws_env.hosts() == set()  # a dry run contacts nothing
    assert keys("breedclf/data/tex/") == {}

    first = ok(f"aws upload {textures_root} --aws {aws_yaml} --name tex")
    assert f"checked {len(local) - 1} images" in first  # textures.json is not an image
    stored = keys("breedclf/data/tex/")
    assert stored == {
        f"breedclf/data/tex/{p.relative_to(textures_root).as_posix()}": p.stat().st_size
        for p in local
    }
    assert f"uploaded {len(local)} files" in first

    second = ok(f"aws upload {textures_root} --aws {aws_yaml} --name tex")
    assert f"uploaded 0 files (0 bytes), skipped {len(local)}" in second

    # An interrupted upload: one object missing, one with other bytes of the same size.
    missing, changed = sorted(stored)[:2]
    s3().delete_object(Bucket=BUCKET, Key=missing)
    size = stored[changed]
    s3().put_object(Bucket=BUCKET, Key=changed, Body=b"x" * size)
    third = ok(f"aws upload {textures_root} --aws {aws_yaml} --name tex")
    assert f"uploaded 2 files ({stored[missing] + size:,} bytes), skipped {len(local) - 2}" in third
    assert aws_env.hosts() == {"127.0.0.1"}


# ------------------------------------------------------------------------------------- train


def test_train_creates_the_job_with_metrics_checkpoints_spot_and_hyperparameters(
    aws_env: Connections, aws_yaml: Path, experiment_yaml: Path
) -> None:
    output = ok(
        f"aws train {experiment_yaml} --aws {aws_yaml} --data tex --set "
        f"optimizer.lr=0.002 --set optimizer.name=sgd --job-name dogs-1 "
        f"--no-wait"
    )
    assert "cost ceiling: ml.g4dn.xlarge × 1 × 4 h × $0.736/h ≤ $2.94" in output
    job = sagemaker().describe_training_job(TrainingJobName="dogs-1")
    # moto answers DescribeTrainingJob with canned metric definitions: check the request sent.
    sent = printed(output, "CreateTrainingJob")
    assert sent["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions()
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith(
        "pytorch-training:2.6.0-gpu-py312"
    )
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 14400, "MaxWaitTimeInSeconds": 28800}
    assert job["CheckpointConfig"] == {
        "S3Uri": f"s3://{BUCKET}/breedclf/checkpoints/dogs-1",
        "LocalPath": "/opt/ml/checkpoints",
    }
    hyperparameters = {k: json.loads(v) for k, v in job["HyperParameters"].items()}
    assert hyperparameters["optimizer.lr"] == "0.002"
    assert hyperparameters["optimizer.name"] == "sgd"
    assert hyperparameters["sagemaker_program"] == "breedclf_train.py"
    source = hyperparameters["sagemaker_submit_directory"]
    assert source == f"s3://{BUCKET}/breedclf/jobs/dogs-1/source/sourcedir.tar.gz"
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{BUCKET}/breedclf/data/tex"
    )
    assert job["RoleArn"] == ROLE
    assert "DebugRuleConfigurations" not in job or not job["DebugRuleConfigurations"]
    # The bundle ships the experiment exactly and the entry script.
    body = s3().get_object(Bucket=BUCKET, Key=source.split(f"{BUCKET}/", 1)[1])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        names = set(tar.getnames())
        shipped = yaml.safe_load(tar.extractfile("config.yaml").read())  # type: ignore[union-attr]
    assert {"breedclf_train.py", "requirements.txt", "breedclf/aws/entry.py"} <= names
    assert ExperimentConfig.model_validate(shipped) == load_config(experiment_yaml)
    tags = sagemaker().list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
    assert {"Key": "project", "Value": "dogs"} in tags
    assert aws_env.hosts() == {"127.0.0.1"}


def test_train_with_debugger_and_profiler_configs(
    aws_env: Connections, tmp_path: Path, experiment_yaml: Path
) -> None:
    aws_yaml = write_aws_config(
        tmp_path / "rules.yaml", debugger_rules=True, smdebug_hook=True, profiler=True
    )
    output = ok(
        f"aws train {experiment_yaml} --aws {aws_yaml} --data tex --job-name dogs-rules --no-wait"
    )
    job = sagemaker().describe_training_job(TrainingJobName="dogs-rules")
    rules = {r["RuleConfigurationName"] for r in job["DebugRuleConfigurations"]}
    assert {"LossNotDecreasing", "Overfit", "VanishingGradient"} <= rules
    assert job["DebugHookConfig"]["S3OutputPath"].endswith("/jobs/dogs-rules/debug-output")
    # moto does not store ProfilerConfig: the request as sent is printed.
    request = printed(output, "CreateTrainingJob")
    assert request["ProfilerConfig"]["ProfilingIntervalInMilliseconds"] == 500
    assert request["ProfilerRuleConfigurations"][0]["RuleConfigurationName"] == "ProfilerReport"


def test_train_dry_run_prints_the_request_and_sends_nothing(
    aws_env: Connections, aws_yaml: Path, experiment_yaml: Path
) -> None:
    output = ok(
        f"aws train {experiment_yaml} --aws {aws_yaml} --data tex --job-name dogs-dry --dry-run"
    )
    assert "PutObject s3://breedclf-test/breedclf/jobs/dogs-dry/source/sourcedir.tar.gz" in output
    request = printed(output, "CreateTrainingJob")
    assert request["TrainingJobName"] == "dogs-dry"
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions()
    assert aws_env.hosts() == set()


def test_two_instances_without_distribution_are_refused(
    aws_env: Connections, tmp_path: Path, experiment_yaml: Path
) -> None:
    config = tmp_path / "two.yaml"
    config.write_text(
        yaml.safe_dump({"region": "us-east-1", "role": ROLE, "bucket": BUCKET, "instance_count": 2})
    )
    result = cli(f"aws train {experiment_yaml} --aws {config} --data tex --dry-run")
    assert isinstance(result.exception, ConfigurationError)
    assert "train the same model 2 times and bill every instance" in str(result.exception)
    config.write_text(
        yaml.safe_dump(
            {
                "region": "us-east-1",
                "role": ROLE,
                "bucket": BUCKET,
                "instance_count": 2,
                "distribution": "torchrun",
            }
        )
    )
    output = ok(f"aws train {experiment_yaml} --aws {config} --data tex --dry-run")
    request = printed(output, "CreateTrainingJob")
    assert request["ResourceConfig"]["InstanceCount"] == 2
    assert request["HyperParameters"]["sagemaker_torch_distributed_enabled"] == '"true"'


def test_a_typo_in_set_fails_before_anything_is_sent(
    aws_env: Connections, aws_yaml: Path, experiment_yaml: Path
) -> None:
    result = cli(f"aws train {experiment_yaml} --aws {aws_yaml} --data tex --set optimizer.lrr=0.1")
    assert isinstance(result.exception, ConfigurationError)
    assert "did you mean 'lr'" in str(result.exception)
    assert aws_env.hosts() == set()


def test_train_waits_streams_the_logs_and_downloads_model_and_report(
    aws_env: Connections,
    aws_yaml: Path,
    experiment_yaml: Path,
    tmp_path: Path,
    small_model_dir: Path,
) -> None:
    # What SageMaker would have left: the job's log stream and its two archives (moto runs no
    # container and reports every job as Completed).
    import boto3

    logs = boto3.client("logs", region_name="us-east-1")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    stream = "dogs-wait/algo-1-1700000000"
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)
    logs.put_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=stream,
        logEvents=[
            {
                "timestamp": int(time.time() * 1000),
                "message": "epoch=1 split=valid loss=nan acc=1.0e-05",
            },
        ],
    )
    model = io.BytesIO()
    with tarfile.open(fileobj=model, mode="w:gz") as tar:
        for path in sorted(small_model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    s3().put_object(
        Bucket=BUCKET, Key="breedclf/jobs/dogs-wait/output/model.tar.gz", Body=model.getvalue()
    )
    report = io.BytesIO()
    with tarfile.open(fileobj=report, mode="w:gz") as tar:
        data = b"<html>report</html>"
        info = tarfile.TarInfo("report.html")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    s3().put_object(
        Bucket=BUCKET, Key="breedclf/jobs/dogs-wait/output/output.tar.gz", Body=report.getvalue()
    )
    out = tmp_path / "downloaded"
    output = ok(
        f"aws train {experiment_yaml} --aws {aws_yaml} --data tex --job-name dogs-wait --out {out}"
    )
    assert "epoch=1 split=valid loss=nan acc=1.0e-05" in output
    assert "training job dogs-wait completed" in output
    from breedclf.saved_model import load_model

    assert load_model(out / "model").classes == ["brick", "grass", "gravel"]
    assert (out / "output" / "report.html").read_text() == "<html>report</html>"
    assert (
        "breedclf aws deploy s3://breedclf-test/breedclf/jobs/dogs-wait/output/model.tar.gz"
        in output
    )


def test_stop_through_stubber(aws_env: Connections) -> None:
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response(
            "describe_training_job",
            _described_job("dogs-stop"),
            {"TrainingJobName": "dogs-stop"},
        )
        stub.add_response("stop_training_job", {}, {"TrainingJobName": "dogs-stop"})
        lines: list[str] = []
        AwsSession(aws_config(), echo=lines.append, clients={"sagemaker": client}).stop("dogs-stop")
        stub.assert_no_pending_responses()
    assert lines == ["stopping training job dogs-stop"]


def _described_job(name: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/x/model.tar.gz"},
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": "Training",
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "img"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": datetime(2026, 11, 22, tzinfo=UTC),
    }
