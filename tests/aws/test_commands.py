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
    queue_endpoint_answer,
    s3,
    sagemaker,
    tar_gz,
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
    report = tar_gz({"report.html": b"<html>report</html>"})
    s3().put_object(Bucket=BUCKET, Key="breedclf/jobs/dogs-wait/output/output.tar.gz", Body=report)
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


# ------------------------------------------------------------------------------------ tuning


@pytest.fixture
def study_yaml(tmp_path: Path, experiment_yaml: Path) -> Path:
    study = {
        "experiment": experiment_yaml.name,
        "study_dir": "runs/dogs-study",
        "objective": "valid_acc",
        "trials": 12,
        "parallel": 3,
        "seed": 4,
        "pruner": {"name": "median"},
        "parameters": {
            "optimizer.lr": {"type": "continuous", "low": 1e-5, "high": 1e-1, "scaling": "log"},
            "optimizer.name": {"type": "categorical", "values": ["adamw", "sgd"]},
            "optimizer.momentum": {"type": "continuous", "low": 0.5, "high": 0.99},
            "training.batch_size": {"type": "categorical", "values": [16, 32]},
            "model.freeze.trainable_stages": {"type": "integer", "low": 1, "high": 3},
            "training.label_smoothing": {
                "type": "continuous",
                "low": 0.0,
                "high": 0.2,
                "scaling": "reverse_log",
            },
        },
    }
    path = experiment_yaml.parent / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_tune_translates_the_study_file(
    aws_env: Connections, aws_yaml: Path, study_yaml: Path
) -> None:
    output = ok(f"aws tune {study_yaml} --aws {aws_yaml} --data tex --job-name dogs-t1")
    assert "cost ceiling: ml.g4dn.xlarge × 12 × 4 h × $0.736/h ≤ $35.33 (12 trials)" in output
    job = sagemaker().describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="dogs-t1")
    config = job["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "valid:acc",
    }
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3}
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["RandomSeed"] == 4
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {
            "Name": "optimizer.lr",
            "MinValue": "1.0e-05",
            "MaxValue": "0.1",
            "ScalingType": "Logarithmic",
        },
        # "auto" made concrete the way the local study does: a range under two decades is linear
        {
            "Name": "optimizer.momentum",
            "MinValue": "0.5",
            "MaxValue": "0.99",
            "ScalingType": "Linear",
        },
        {
            "Name": "training.label_smoothing",
            "MinValue": "0.0",
            "MaxValue": "0.2",
            "ScalingType": "ReverseLogarithmic",
        },
    ]
    assert ranges["IntegerParameterRanges"] == [
        {
            "Name": "model.freeze.trainable_stages",
            "MinValue": "1",
            "MaxValue": "3",
            "ScalingType": "Linear",
        },
    ]
    assert ranges["CategoricalParameterRanges"] == [
        {"Name": "optimizer.name", "Values": ["adamw", "sgd"]},
        {"Name": "training.batch_size", "Values": ["16", "32"]},
    ]
    definition = job["TrainingJobDefinition"]
    assert json.loads(definition["StaticHyperParameters"]["training.monitor"]) == "valid_acc"
    sent = printed(output, "CreateHyperParameterTuningJob")
    assert sent["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"] == (
        metric_definitions()
    )
    # The tuner would not forward it; the request carries it (one folder per trial inside).
    assert sent["TrainingJobDefinition"]["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert aws_env.hosts() == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param("--strategy Random", {"Strategy": "Random"}, id="random"),
        pytest.param(
            "--strategy Hyperband",
            {
                "Strategy": "Hyperband",
                "TrainingJobEarlyStoppingType": "Off",
                "StrategyConfig": {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 2}},
            },
            id="hyperband",
        ),
    ],
)
def test_tune_strategies(
    aws_env: Connections, aws_yaml: Path, study_yaml: Path, options: str, expected: dict[str, Any]
) -> None:
    output = ok(f"aws tune {study_yaml} --aws {aws_yaml} --data tex {options} --dry-run")
    config = printed(output, "CreateHyperParameterTuningJob")["HyperParameterTuningJobConfig"]
    assert {key: config[key] for key in expected} == expected
    assert aws_env.hosts() == set()


def test_grid_needs_a_discrete_space(
    aws_env: Connections, aws_yaml: Path, study_yaml: Path
) -> None:
    result = cli(f"aws tune {study_yaml} --aws {aws_yaml} --data tex --strategy Grid --dry-run")
    assert isinstance(result.exception, ConfigurationError)
    assert "Grid strategy needs categorical or integer parameters" in str(result.exception)


def test_tune_show_lists_trials_and_writes_the_best_config_like_a_local_study(
    aws_env: Connections, aws_yaml: Path, study_yaml: Path, experiment_yaml: Path, tmp_path: Path
) -> None:
    import boto3
    from botocore.stub import Stubber

    from breedclf.aws import load_aws_config
    from breedclf.tuning._space import best_config

    ok(f"aws tune {study_yaml} --aws {aws_yaml} --data tex --job-name dogs-t2")
    described = sagemaker().describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="dogs-t2"
    )
    described.pop("ResponseMetadata")
    tuned = {
        "optimizer.lr": "0.0031",
        "optimizer.name": "sgd",
        "optimizer.momentum": "0.93",
        "training.batch_size": "16",
        "model.freeze.trainable_stages": "2",
        "training.label_smoothing": "0.05",
    }
    best = {
        "TrainingJobName": "dogs-t2-003-abc",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/dogs-t2-003-abc",
        "CreationTime": described["CreationTime"],
        "TrainingJobStatus": "Completed",
        "TunedHyperParameters": tuned,
        "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "valid:acc", "Value": 0.91},
    }
    described["BestTrainingJob"] = best
    other = {
        **best,
        "TrainingJobName": "dogs-t2-001-abc",
        "TrainingJobStatus": "Stopped",
        "TunedHyperParameters": {**tuned, "optimizer.lr": "0.05"},
        "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "valid:acc", "Value": 0.4},
    }
    # moto has no ListTrainingJobsForHyperParameterTuningJob: Stubber answers both calls, the
    # source bundle comes from moto's S3.
    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", described)
        stub.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {"TrainingJobSummaries": [other, best], "NextToken": "page2"},
        )
        stub.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {"TrainingJobSummaries": []},
            {"HyperParameterTuningJobName": "dogs-t2", "MaxResults": 100, "NextToken": "page2"},
        )
        session = AwsSession(load_aws_config(aws_yaml), echo=print, clients={"sagemaker": client})
        result = session.tuning_result("dogs-t2", tmp_path / "show")
        stub.assert_no_pending_responses()
    assert [t["TrainingJobName"] for t in result.trials] == ["dogs-t2-001-abc", "dogs-t2-003-abc"]
    expected = best_config(
        load_config(experiment_yaml),
        {
            "optimizer.lr": 0.0031,
            "optimizer.name": "sgd",
            "optimizer.momentum": 0.93,
            "training.batch_size": 16,
            "model.freeze.trainable_stages": 2,
            "training.label_smoothing": 0.05,
        },
        objective="valid_acc",
    )
    assert result.best_config_path == tmp_path / "show" / "best" / "config.yaml"
    assert load_config(result.best_config_path) == expected
    assert (tmp_path / "show" / "best" / "config.yaml").read_text() == dump_config(expected)
    trial = json.loads((tmp_path / "show" / "best" / "trial.json").read_text())
    assert trial["value"] == 0.91
    assert "dogs-t2-001-abc,Stopped,0.4" in (tmp_path / "show" / "trials.csv").read_text()


# --------------------------------------------------------------------------------- endpoints


def _serve_in_process(archive: bytes, image: bytes, tmp_path: Path) -> bytes:
    """The real handler chain (model_fn → input_fn → predict_fn → output_fn) on an archive."""
    from breedclf.serving import input_fn, model_fn, output_fn, predict_fn

    root = tmp_path / "opt-ml-model"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    model = model_fn(str(root))
    body, _ = output_fn(predict_fn(input_fn(image, "application/x-image"), model), "*/*")
    return body


def test_deploy_invoke_delete(
    aws_env: Connections,
    aws_yaml: Path,
    small_model_dir: Path,
    textures_root: Path,
    moto_url: str,
    tmp_path: Path,
) -> None:
    output = ok(f"aws deploy {small_model_dir} --aws {aws_yaml} --name dogs-ep")
    assert "cost ceiling: ml.m5.large × 1 × 24 h × $0.115/h ≤ $2.76" in output
    assert "endpoint dogs-ep is in service" in output
    model = sagemaker().describe_model(ModelName="dogs-ep")
    container = model["PrimaryContainer"]
    assert container["Image"].endswith("pytorch-inference:2.6.0-cpu-py312")
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    key = container["ModelDataUrl"].split(f"{BUCKET}/", 1)[1]
    archive = s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert {"model.safetensors", "breedclf.json", "code/inference.py"} <= set(tar.getnames())
    config = sagemaker().describe_endpoint_config(EndpointConfigName="dogs-ep")
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"

    image = next((textures_root / "test" / "gravel").iterdir())
    queue_endpoint_answer(moto_url, _serve_in_process(archive, image.read_bytes(), tmp_path))
    answer = ok(f"aws invoke dogs-ep {image} --aws {aws_yaml}")
    labels = [line.split()[1] for line in answer.strip().splitlines()]
    assert sorted(labels) == ["brick", "grass", "gravel"]

    deleted = ok(f"aws delete dogs-ep --aws {aws_yaml}")
    assert deleted.splitlines() == [
        "DeleteEndpoint dogs-ep",
        "DeleteEndpointConfig dogs-ep",
        "DeleteModel dogs-ep",
    ]
    assert sagemaker().list_endpoints()["Endpoints"] == []
    assert sagemaker().list_models()["Models"] == []
    assert sagemaker().list_endpoint_configs()["EndpointConfigs"] == []
    assert aws_env.hosts() == {"127.0.0.1"}


def test_deploy_from_python_returns_a_predictor(
    aws_env: Connections,
    small_model_dir: Path,
    textures_root: Path,
    moto_url: str,
    tmp_path: Path,
) -> None:
    from breedclf.aws import deploy

    aws = aws_config(serverless={"memory_mb": 2048})
    predictor = deploy(small_model_dir, aws, name="dogs-py")
    variant = sagemaker().describe_endpoint_config(EndpointConfigName="dogs-py")[
        "ProductionVariants"
    ][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    model_data = sagemaker().describe_model(ModelName="dogs-py")["PrimaryContainer"]["ModelDataUrl"]
    archive = s3().get_object(Bucket=BUCKET, Key=model_data.split(f"{BUCKET}/", 1)[1])["Body"]
    image = next((textures_root / "test" / "brick").iterdir())
    queue_endpoint_answer(moto_url, _serve_in_process(archive.read(), image.read_bytes(), tmp_path))
    predictions = predictor.predict(image, top_k=3)
    assert {p["label"] for p in predictions} == {"brick", "grass", "gravel"}
    assert predictor.delete() == ["dogs-py", "dogs-py", "dogs-py"]


def test_deploy_refuses_an_archive_that_is_not_a_breedclf_model(
    aws_env: Connections, aws_yaml: Path
) -> None:
    archive = tar_gz({"model.pth": b"pkl!"})
    s3().put_object(Bucket=BUCKET, Key="other/model.tar.gz", Body=archive)
    result = cli(f"aws deploy s3://{BUCKET}/other/model.tar.gz --aws {aws_yaml}")
    assert "is not a deployable breedclf model (missing breedclf.json" in str(result.exception)
    assert sagemaker().list_models()["Models"] == []


def test_deploy_and_delete_dry_runs_send_nothing(
    aws_env: Connections, aws_yaml: Path, small_model_dir: Path
) -> None:
    output = ok(f"aws deploy {small_model_dir} --aws {aws_yaml} --name dogs-dry --dry-run")
    for operation in ("CreateModel", "CreateEndpointConfig", "CreateEndpoint"):
        assert printed(output, operation)
    assert "PutObject s3://breedclf-test/breedclf/models/" in output
    assert aws_env.hosts() == set()


def test_failures_are_reported_with_sagemakers_reason(aws_env: Connections) -> None:
    import boto3
    from botocore.stub import Stubber

    from breedclf.aws._session import AwsError

    client = boto3.client("sagemaker", region_name="us-east-1")
    logs = boto3.client("logs", region_name="us-east-1")
    failed_job = {
        **_described_job("dogs-bad"),
        "TrainingJobStatus": "Failed",
        "FailureReason": "AlgorithmError: unknown key 'lrr' in AdamWConfig; did you mean 'lr'?",
    }
    endpoint = {
        "EndpointName": "dogs-ep",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/dogs-ep",
        "EndpointConfigName": "dogs-ep",
        "EndpointStatus": "Failed",
        "FailureReason": "The primary container for production variant AllTraffic did not pass "
        "the ping health check.",
        "CreationTime": failed_job["CreationTime"],
        "LastModifiedTime": failed_job["CreationTime"],
    }
    with Stubber(client) as stub, Stubber(logs) as log_stub:
        stub.add_response("describe_training_job", failed_job, {"TrainingJobName": "dogs-bad"})
        log_stub.add_response("describe_log_streams", {"logStreams": []})
        stub.add_response("describe_endpoint", endpoint, {"EndpointName": "dogs-ep"})
        session = AwsSession(aws_config(), echo=print, clients={"sagemaker": client, "logs": logs})
        with pytest.raises(AwsError, match="training job dogs-bad failed: AlgorithmError: unknown"):
            session.wait_training_job("dogs-bad")
        with pytest.raises(
            AwsError,
            match=r"endpoint dogs-ep failed: .*ping health check.*"
            r"/aws/sagemaker/Endpoints/dogs-ep.*breedclf aws delete dogs-ep",
        ):
            session.wait_endpoint("dogs-ep")
        stub.assert_no_pending_responses()
