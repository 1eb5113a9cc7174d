"""Sending breedclf's SageMaker requests with boto3 (credentials: boto3's standard chain)."""

from __future__ import annotations

import csv
import hashlib
import json
import tarfile
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from breedclf._io import atomic_path
from breedclf.aws._bundle import write_source_bundle
from breedclf.aws._config import AwsConfig
from breedclf.aws._requests import (
    _sdk_warnings_ignored,
    endpoint_requests,
    estimate_cost,
    image_uri,
    import_sagemaker,
    job_name,
    training_job_request,
    tuning_job_request,
)
from breedclf.config import ExperimentConfig, _format_value, dump_config, parse_value
from breedclf.errors import BreedclfError, ConfigurationError

__all__ = ["AwsError", "AwsSession", "EndpointPredictor", "deploy"]

Echo = Callable[[str], None]
_CHECKSUM_KEY = "sha256"  # S3 user metadata written by upload_data
_TRAINING_DONE = {"Completed", "Failed", "Stopped"}


class AwsError(BreedclfError, RuntimeError):
    """A SageMaker or S3 operation failed or timed out; the message says which and why."""


@dataclass(frozen=True)
class UploadResult:
    """What :meth:`AwsSession.upload_data` did."""

    uri: str
    uploaded: int
    skipped: int
    bytes_uploaded: int


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ConfigurationError(f"expected an s3:// URI, got {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class AwsSession:
    """S3 and SageMaker through boto3, for one :class:`AwsConfig`.

    Every method that would create something billable prints the cost ceiling first; with
    ``dry_run=True`` it prints the exact requests and sends nothing.

    Args:
        aws: Region, role, bucket, instances.
        echo: Where messages go (``print`` by default; the CLI passes ``typer.echo``).
        boto_session: A ``boto3.Session`` to use (default: one for ``aws.region``).
        clients: Ready boto3 clients by service name (``"sagemaker"``, ``"s3"``, ...), e.g.
            with botocore's ``Stubber`` attached; the others are made from ``boto_session``.
    """

    def __init__(
        self,
        aws: AwsConfig,
        *,
        echo: Echo = print,
        boto_session: boto3.Session | None = None,
        clients: dict[str, Any] | None = None,
    ) -> None:
        self.aws = aws
        self.echo = echo
        self.boto = boto_session or boto3.Session(region_name=aws.region)
        self._clients: dict[str, Any] = dict(clients or {})

    @property
    def region(self) -> str:
        """The region requests go to."""
        region = self.boto.region_name
        if not region:
            raise ConfigurationError(
                "no AWS region: set region in the AWS config, or AWS_REGION / ~/.aws/config"
            )
        return str(region)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` in :attr:`region` (cached)."""
        if service not in self._clients:
            self._clients[service] = self.boto.client(service, region_name=self.region)
        return self._clients[service]

    def _show(self, operation: str, request: dict[str, Any]) -> None:
        self.echo(f"{operation} " + json.dumps(request, indent=2, sort_keys=False))

    # ------------------------------------------------------------------------------ data

    def upload_data(
        self,
        data_dir: str | Path,
        *,
        name: str | None = None,
        dry_run: bool = False,
        workers: int = 8,
        progress: bool | None = None,
    ) -> UploadResult:
        """Upload an image folder to ``s3://bucket/prefix/data/<name>/`` (resumable).

        Files already there with the same size and SHA-256 (kept in the object's metadata) are
        skipped, so an interrupted upload continues where it stopped and a second run uploads
        nothing. Large files go up in parallel multipart parts, several files at once.
        """
        from tqdm import tqdm

        root = Path(data_dir)
        if not root.is_dir():
            raise ConfigurationError(f"{root} is not a directory")
        uri = self.aws.s3_uri("data", name or root.resolve().name)
        bucket, prefix = _split_s3(uri)
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        existing: dict[str, int] = {}
        if not dry_run:
            paginator = self.client("s3").get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix + "/"):
                for item in page.get("Contents", []):
                    existing[item["Key"]] = int(item["Size"])

        def key_of(path: Path) -> str:
            return f"{prefix}/{path.relative_to(root).as_posix()}"

        def needs_upload(path: Path) -> tuple[Path, str | None]:
            key = key_of(path)
            size = path.stat().st_size
            digest = _sha256(path)
            if existing.get(key) == size:
                head = self.client("s3").head_object(Bucket=bucket, Key=key)
                if head.get("Metadata", {}).get(_CHECKSUM_KEY) == digest:
                    return path, None
            return path, digest

        with ThreadPoolExecutor(max_workers=workers) as pool:
            todo = [(p, d) for p, d in pool.map(needs_upload, files) if d is not None]
        total = sum(p.stat().st_size for p, _ in todo)
        if dry_run:
            for path, _ in todo:
                self.echo(f"PutObject s3://{bucket}/{key_of(path)} ({path.stat().st_size} bytes)")
            self.echo(f"would upload {len(todo)} files ({total:,} bytes) to {uri}")
            return UploadResult(uri, len(todo), 0, total)
        transfer = TransferConfig(
            multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=4
        )
        s3 = self.client("s3")
        with tqdm(
            total=total, unit="B", unit_scale=True, desc="upload", disable=progress is False
        ) as bar:

            def send(item: tuple[Path, str]) -> None:
                path, digest = item
                s3.upload_file(
                    str(path),
                    bucket,
                    key_of(path),
                    ExtraArgs={"Metadata": {_CHECKSUM_KEY: digest}},
                    Config=transfer,
                    Callback=bar.update,
                )

            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(send, todo))
        skipped = len(files) - len(todo)
        self.echo(f"uploaded {len(todo)} files ({total:,} bytes), skipped {skipped} already there")
        return UploadResult(uri, len(todo), skipped, total)

    def _upload_file(self, path: Path, uri: str) -> None:
        bucket, key = _split_s3(uri)
        self.client("s3").upload_file(str(path), bucket, key)

    def _download(self, uri: str, target: Path) -> Path:
        bucket, key = _split_s3(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            self.client("s3").download_file(bucket, key, str(tmp))
        return target

    # ---------------------------------------------------------------------------- training

    def _rule_images(self) -> dict[str, str]:
        if not (self.aws.debugger_rules or self.aws.profiler):
            return {}
        debugger = import_sagemaker("sagemaker.core.debugger")
        with _sdk_warnings_ignored():
            image = debugger.get_rule_container_image_uri("ProfilerReport", self.region)
        return {"debugger": image, "profiler": image}

    def _bundle(self, experiment: ExperimentConfig, name: str, dry_run: bool) -> str:
        uri = self.aws.s3_uri("jobs", name, "source", "sourcedir.tar.gz")
        if dry_run:
            self.echo(f"PutObject {uri} (source bundle: breedclf, config.yaml, requirements.txt)")
            return uri
        with tempfile.TemporaryDirectory() as tmp:
            bundle = write_source_bundle(experiment, Path(tmp) / "sourcedir.tar.gz")
            self._upload_file(bundle, uri)
        return uri

    def train(
        self,
        experiment: ExperimentConfig,
        *,
        data_uri: str,
        overrides: dict[str, Any] | None = None,
        name: str | None = None,
        dry_run: bool = False,
        wait: bool = True,
        download_to: str | Path | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Create a training job for ``experiment`` (its YAML ships in the source bundle).

        ``overrides`` (``--set``) are sent as hyperparameters. With ``wait``, the job's
        CloudWatch logs are streamed until it ends; a completed job's model (``model/``, the
        saved model in the layout of ``breedclf package``) and outputs (``output/``: metrics,
        report, debugger findings) are downloaded to ``download_to``.

        Returns:
            The ``CreateTrainingJob`` request (also when ``dry_run``).

        Raises:
            AwsError: The job failed, stopped or timed out.
        """
        from breedclf.config import override

        overrides = dict(overrides or {})
        override(experiment, overrides, source="--set")  # a typo fails here, not in the job
        name = name or job_name(experiment.name, _stamp())
        self.echo(
            "cost ceiling: "
            + estimate_cost(
                self.aws,
                instance_type=self.aws.instance_type,
                count=self.aws.instance_count,
                hours=self.aws.max_run_hours,
            )
        )
        source = self._bundle(experiment, name, dry_run)
        hyperparameters = {key: _format_value(value) for key, value in overrides.items()}
        request = training_job_request(
            self.aws,
            name=name,
            image=image_uri(
                self.aws, self.region, scope="training", instance_type=self.aws.instance_type
            ),
            source_uri=source,
            data_uri=data_uri,
            region=self.region,
            hyperparameters=hyperparameters,
            debugger_rule_images=self._rule_images(),
        )
        self._show("CreateTrainingJob", request)
        if dry_run:
            return request
        self.client("sagemaker").create_training_job(**request)
        self.echo(f"started training job {name}")
        if wait:
            status = self.wait_training_job(name, timeout_s=timeout_s)
            if download_to is not None and status["TrainingJobStatus"] == "Completed":
                self.download_job_outputs(status, Path(download_to))
        return request

    def wait_training_job(self, name: str, *, timeout_s: float | None = None) -> dict[str, Any]:
        """Stream the job's CloudWatch logs until it completes; its final description.

        Raises:
            AwsError: It failed or stopped (with SageMaker's failure reason), or ``timeout_s``
                passed.
        """
        sagemaker = self.client("sagemaker")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        seen: dict[str, str | None] = {}
        while True:
            status = sagemaker.describe_training_job(TrainingJobName=name)
            self._print_logs(name, seen)
            state = status["TrainingJobStatus"]
            if state in _TRAINING_DONE:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise AwsError(
                    f"training job {name} is still {state} after {timeout_s:g} s; it keeps "
                    f"running (stop it with: breedclf aws stop {name})"
                )
            time.sleep(15)
        if state != "Completed":
            reason = status.get("FailureReason", "no reason given")
            raise AwsError(f"training job {name} {state.lower()}: {reason}")
        self.echo(f"training job {name} completed")
        return dict(status)

    def _print_logs(self, name: str, seen: dict[str, str | None]) -> None:
        logs = self.client("logs")
        group = "/aws/sagemaker/TrainingJobs"
        try:
            streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=name + "/")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return  # no log yet
            raise
        for stream in streams.get("logStreams", []):
            stream_name = stream["logStreamName"]
            kwargs: dict[str, Any] = {
                "logGroupName": group,
                "logStreamName": stream_name,
                "startFromHead": True,
            }
            token = seen.get(stream_name)
            if token:
                kwargs["nextToken"] = token
            while True:
                page = logs.get_log_events(**kwargs)
                for event in page.get("events", []):
                    self.echo(event["message"])
                if page.get("nextForwardToken") in (None, kwargs.get("nextToken")):
                    break
                kwargs["nextToken"] = page["nextForwardToken"]
            seen[stream_name] = kwargs.get("nextToken")

    def download_job_outputs(self, status: dict[str, Any], target: Path) -> Path:
        """Download and unpack a completed job's ``model.tar.gz`` → ``target/model`` and
        ``output.tar.gz`` (metrics, report, debugger findings) → ``target/output``."""
        if target.exists() and any(target.iterdir()):
            raise BreedclfError(f"{target} is not empty: choose another --out")
        model_uri = status["ModelArtifacts"]["S3ModelArtifacts"]
        output_uri = model_uri.rsplit("/", 1)[0] + "/output.tar.gz"
        with tempfile.TemporaryDirectory() as tmp:
            for uri, folder in ((model_uri, "model"), (output_uri, "output")):
                try:
                    archive = self._download(uri, Path(tmp) / f"{folder}.tar.gz")
                except ClientError as exc:
                    self.echo(f"no {uri}: {exc.response['Error'].get('Message', exc)}")
                    continue
                with tarfile.open(archive) as tar:
                    tar.extractall(target / folder, filter="data")
                self.echo(f"downloaded {uri} -> {target / folder}")
        return target

    def stop(self, name: str, *, dry_run: bool = False) -> None:
        """Stop a training job, or a tuning job when no training job has ``name``."""
        sagemaker = self.client("sagemaker")
        if dry_run:
            self.echo(f"StopTrainingJob or StopHyperParameterTuningJob {name}")
            return
        try:
            sagemaker.describe_training_job(TrainingJobName=name)
        except ClientError:
            sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            self.echo(f"stopping tuning job {name}")
            return
        sagemaker.stop_training_job(TrainingJobName=name)
        self.echo(f"stopping training job {name}")

    # ------------------------------------------------------------------------------ tuning

    def tune(
        self,
        study_path: str | Path,
        *,
        data_uri: str,
        name: str | None = None,
        strategy: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Create a tuning job from a study file (see :func:`tuning_job_request`)."""
        from breedclf.tuning._config import check_space, load_study_config, resolve_experiment

        study = load_study_config(study_path)
        experiment = resolve_experiment(study)
        check_space(study, experiment)
        name = name or job_name(study.study_name, _stamp(), limit=32)
        if len(name) > 32:
            raise ConfigurationError(f"tuning job names have at most 32 characters: {name!r}")
        self.echo(
            "cost ceiling: "
            + estimate_cost(
                self.aws,
                instance_type=self.aws.instance_type,
                count=self.aws.instance_count * study.trials,
                hours=self.aws.max_run_hours,
            )
            + f" ({study.trials} trials)"
        )
        source = self._bundle(experiment, name, dry_run)
        request = tuning_job_request(
            self.aws,
            study,
            name=name,
            image=image_uri(
                self.aws, self.region, scope="training", instance_type=self.aws.instance_type
            ),
            source_uri=source,
            data_uri=data_uri,
            region=self.region,
            epochs=experiment.training.epochs,
            strategy=strategy,
        )
        self._show("CreateHyperParameterTuningJob", request)
        if not dry_run:
            self.client("sagemaker").create_hyper_parameter_tuning_job(**request)
            self.echo(f"started tuning job {name}: breedclf aws tune show {name}")
        return request

    def wait_tuning_job(self, name: str, *, timeout_s: float | None = None) -> dict[str, Any]:
        """Wait until a tuning job ends; its final description.

        Raises:
            AwsError: It failed or stopped (with SageMaker's reason), or ``timeout_s`` passed.
        """
        sagemaker = self.client("sagemaker")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            state = job["HyperParameterTuningJobStatus"]
            counters = job.get("TrainingJobStatusCounters", {})
            self.echo(f"tuning job {name}: {state} {counters}")
            if state in _TRAINING_DONE:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise AwsError(f"tuning job {name} is still {state} after {timeout_s:g} s")
            time.sleep(60)
        if state != "Completed":
            raise AwsError(f"tuning job {name} {state.lower()}: {job.get('FailureReason', '')}")
        return dict(job)

    def tuning_trials(self, name: str) -> list[dict[str, Any]]:
        """Every training job of a tuning job (ListTrainingJobsForHyperParameterTuningJob)."""
        sagemaker = self.client("sagemaker")
        trials: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"HyperParameterTuningJobName": name, "MaxResults": 100}
        while True:
            page = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(**kwargs)
            trials += page["TrainingJobSummaries"]
            if not page.get("NextToken"):
                return trials
            kwargs["NextToken"] = page["NextToken"]

    def tuning_result(self, name: str, out_dir: str | Path) -> TuningResult:
        """The trials of a tuning job and its best configuration, written like a local study:
        ``trials.csv``, ``best/config.yaml`` (the shipped experiment with the best values, the
        same :func:`~breedclf.tuning.best_config` as ``breedclf tune``) and ``best/trial.json``.
        """
        from breedclf.tuning._space import best_config

        sagemaker = self.client("sagemaker")
        job = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        trials = self.tuning_trials(name)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        names = sorted({k for t in trials for k in t.get("TunedHyperParameters", {})})
        with atomic_path(out / "trials.csv") as tmp, tmp.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["job", "state", "value", *names])
            for trial in trials:
                metric = trial.get("FinalHyperParameterTuningJobObjectiveMetric", {})
                writer.writerow(
                    [
                        trial["TrainingJobName"],
                        trial["TrainingJobStatus"],
                        metric.get("Value", ""),
                        *(trial.get("TunedHyperParameters", {}).get(n, "") for n in names),
                    ]
                )
        best = job.get("BestTrainingJob")
        if best is None:
            return TuningResult(job, trials, None)
        objective = job["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
        monitor = "valid_acc" if objective["MetricName"] == "valid:acc" else "valid_loss"
        values = {k: parse_value(v) for k, v in best.get("TunedHyperParameters", {}).items()}
        experiment = self._shipped_experiment(job)
        config = best_config(experiment, values, objective=monitor)
        best_dir = out / "best"
        best_dir.mkdir(exist_ok=True)
        with atomic_path(best_dir / "config.yaml") as tmp:
            dump_config(config, tmp)
        summary = {
            "job": best["TrainingJobName"],
            "value": best.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value"),
            "params": values,
        }
        with atomic_path(best_dir / "trial.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=1), encoding="utf-8")
        return TuningResult(job, trials, best_dir / "config.yaml")

    def _shipped_experiment(self, job: dict[str, Any]) -> ExperimentConfig:
        """The experiment a tuning job's source bundle carries (its ``config.yaml``)."""
        from breedclf.config import load_config

        static = job["TrainingJobDefinition"]["StaticHyperParameters"]
        source = json.loads(static["sagemaker_submit_directory"])
        with tempfile.TemporaryDirectory() as tmp:
            archive = self._download(source, Path(tmp) / "sourcedir.tar.gz")
            with tarfile.open(archive) as tar:
                member = tar.extractfile("config.yaml")
                if member is None:
                    raise AwsError(f"{source} has no config.yaml")
                (Path(tmp) / "config.yaml").write_bytes(member.read())
            return load_config(Path(tmp) / "config.yaml")

    # ---------------------------------------------------------------------------- endpoints

    def deploy(
        self,
        model: str | Path,
        *,
        name: str | None = None,
        dry_run: bool = False,
        wait: bool = True,
        timeout_s: float = 1800.0,
    ) -> EndpointPredictor:
        """Deploy a saved model directory or an ``s3://.../model.tar.gz`` on an endpoint.

        A local directory is packaged (:func:`~breedclf.serving.package_model`) and uploaded;
        an S3 archive is checked first: it must hold a breedclf model and ``code/inference.py``
        (a training job's ``model.tar.gz`` does), never some other artifact.

        Raises:
            CheckpointError: The directory is not a saved model.
            AwsError: The archive is not deployable, or the endpoint failed or timed out.
        """
        from breedclf.serving import package_model

        stamp = _stamp()
        if str(model).startswith("s3://"):
            model_data = str(model)
            if not dry_run:
                self._check_archive(model_data)
            base = Path(_split_s3(model_data)[1]).parent.name or "model"
        else:
            source = Path(model)
            base = source.resolve().name
            model_data = self.aws.s3_uri("models", job_name(base, stamp), "model.tar.gz")
            with tempfile.TemporaryDirectory() as tmp:
                archive = package_model(source, Path(tmp) / "model.tar.gz")
                if dry_run:
                    self.echo(f"PutObject {model_data} ({archive.stat().st_size:,} bytes)")
                else:
                    self._upload_file(archive, model_data)
        name = name or job_name(base, stamp)
        if self.aws.serverless is None:
            self.echo(
                "cost ceiling: "
                + estimate_cost(
                    self.aws,
                    instance_type=self.aws.inference_instance_type,
                    count=self.aws.inference_instance_count,
                    hours=self.aws.max_endpoint_hours,
                )
                + " (an endpoint bills until deleted: breedclf aws delete "
                + name
                + ")"
            )
        else:
            self.echo("cost: serverless endpoint, billed per request (no idle instances)")
        instance = self.aws.inference_instance_type
        image = image_uri(self.aws, self.region, scope="inference", instance_type=instance)
        requests = endpoint_requests(
            self.aws, name=name, image=image, model_data=model_data, region=self.region
        )
        sagemaker = self.client("sagemaker")
        for operation, request in requests:
            self._show(operation, request)
            if not dry_run:
                method = {
                    "CreateModel": sagemaker.create_model,
                    "CreateEndpointConfig": sagemaker.create_endpoint_config,
                    "CreateEndpoint": sagemaker.create_endpoint,
                }[operation]
                method(**request)
        predictor = EndpointPredictor(name, self)
        if not dry_run and wait:
            self.wait_endpoint(name, timeout_s=timeout_s)
        return predictor

    def _check_archive(self, uri: str) -> None:
        bucket, key = _split_s3(uri)
        try:
            body = self.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            raise AwsError(f"cannot read {uri}: {exc}") from None
        names: set[str] = set()
        with tarfile.open(fileobj=body, mode="r|gz") as tar:
            for member in tar:
                names.add(member.name.removeprefix("./"))
        missing = {"breedclf.json", "model.safetensors", "code/inference.py"} - names
        if missing:
            raise AwsError(
                f"{uri} is not a deployable breedclf model (missing {', '.join(sorted(missing))}): "
                "deploy the model.tar.gz of a breedclf training job, or a saved model directory"
            )

    def wait_endpoint(self, name: str, *, timeout_s: float = 1800.0) -> None:
        """Wait until the endpoint is InService.

        Raises:
            AwsError: It failed (with SageMaker's reason) or ``timeout_s`` passed.
        """
        sagemaker = self.client("sagemaker")
        deadline = time.monotonic() + timeout_s
        while True:
            status = sagemaker.describe_endpoint(EndpointName=name)
            state = status["EndpointStatus"]
            if state == "InService":
                self.echo(f"endpoint {name} is in service")
                return
            if state == "Failed":
                raise AwsError(
                    f"endpoint {name} failed: {status.get('FailureReason', 'no reason given')}; "
                    f"see its CloudWatch logs (/aws/sagemaker/Endpoints/{name}), then "
                    f"breedclf aws delete {name}"
                )
            if time.monotonic() > deadline:
                raise AwsError(
                    f"endpoint {name} is still {state} after {timeout_s:g} s (it may still "
                    f"come up; it bills while it exists: breedclf aws delete {name})"
                )
            time.sleep(min(15.0, max(0.5, deadline - time.monotonic())))

    def invoke(
        self, endpoint: str, image: bytes, *, content_type: str = "image/jpeg", top_k: int = 5
    ) -> list[dict[str, Any]]:
        """Classify an encoded image on an endpoint: labelled top-k predictions."""
        response = self.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint,
            Body=image,
            ContentType=content_type,
            Accept="application/json",
            CustomAttributes=f"top_k={top_k}",
        )
        payload = json.loads(response["Body"].read())
        predictions = payload.get("predictions") if isinstance(payload, dict) else None
        if not isinstance(predictions, list):
            raise AwsError(f"endpoint {endpoint} answered without predictions: {payload!r:.300}")
        return predictions

    def delete_endpoint(
        self, name: str, *, dry_run: bool = False, timeout_s: float = 600.0
    ) -> list[str]:
        """Delete an endpoint, its endpoint config and its models; returns what was deleted."""
        sagemaker = self.client("sagemaker")
        deleted: list[str] = []
        try:
            endpoint = sagemaker.describe_endpoint(EndpointName=name)
            config_name = endpoint["EndpointConfigName"]
        except ClientError as exc:
            if "Could not find" not in str(exc):
                raise
            endpoint, config_name = None, name
        models: list[str] = []
        try:
            config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
            models = [v["ModelName"] for v in config["ProductionVariants"]]
        except ClientError as exc:
            if "Could not find" not in str(exc):
                raise
            config_name = ""
        steps: list[tuple[str, str, Callable[[], Any]]] = []
        if endpoint is not None:
            steps.append(
                ("DeleteEndpoint", name, lambda: sagemaker.delete_endpoint(EndpointName=name))
            )
        if config_name:
            steps.append(
                (
                    "DeleteEndpointConfig",
                    config_name,
                    lambda: sagemaker.delete_endpoint_config(EndpointConfigName=config_name),
                )
            )
        for model_name in models:
            steps.append(
                (
                    "DeleteModel",
                    model_name,
                    lambda m=model_name: sagemaker.delete_model(ModelName=m),  # type: ignore[misc]
                )
            )
        if not steps:
            raise AwsError(f"no endpoint, endpoint config or model named {name!r}")
        for operation, target, call in steps:
            self.echo(f"{operation} {target}")
            if dry_run:
                continue
            call()
            deleted.append(target)
            if operation == "DeleteEndpoint":
                self._wait_deleted(name, timeout_s)
        return deleted

    def _wait_deleted(self, name: str, timeout_s: float) -> None:
        sagemaker = self.client("sagemaker")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                sagemaker.describe_endpoint(EndpointName=name)
            except ClientError:
                return
            time.sleep(5)
        raise AwsError(f"endpoint {name} was not deleted within {timeout_s:g} s")


@dataclass(frozen=True)
class TuningResult:
    """A tuning job's description, its trials and where the best config was written."""

    job: dict[str, Any]
    trials: list[dict[str, Any]]
    best_config_path: Path | None


class EndpointPredictor:
    """A deployed endpoint: ``predictor.predict("dog.jpg")`` → labelled top-k predictions.

    Example:
        >>> predictor = deploy("runs/dogs/model", aws)          # doctest: +SKIP
        >>> predictor.predict("dog.jpg", top_k=3)[0]["label"]   # doctest: +SKIP
        'Labrador retriever'
        >>> predictor.delete()                                  # doctest: +SKIP
    """

    def __init__(self, endpoint: str, session: AwsSession) -> None:
        self.endpoint = endpoint
        self.session = session

    def predict(self, image: str | Path | bytes, *, top_k: int = 5) -> list[dict[str, Any]]:
        """Classify an image file or encoded image bytes (JPEG, PNG, WebP)."""
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        return self.session.invoke(
            self.endpoint, data, content_type="application/x-image", top_k=top_k
        )

    def delete(self) -> list[str]:
        """Delete the endpoint, its config and its model."""
        return self.session.delete_endpoint(self.endpoint)


def deploy(
    model: str | Path,
    aws: AwsConfig,
    *,
    name: str | None = None,
    wait: bool = True,
    timeout_s: float = 1800.0,
) -> EndpointPredictor:
    """Deploy a saved model (directory or ``s3://.../model.tar.gz``); returns its predictor."""
    return AwsSession(aws).deploy(model, name=name, wait=wait, timeout_s=timeout_s)
