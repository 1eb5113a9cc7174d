"""``breedclf aws ...``: upload, train, tune (+ show), deploy, invoke, delete, stop."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from breedclf._cliutil import parse_overrides
from breedclf.tuning._commands import _RunByDefault

if TYPE_CHECKING:
    from breedclf.aws._session import AwsSession

__all__ = ["aws_app"]

aws_app = typer.Typer(
    # "\\[" keeps rich's markup from eating "[aws]".
    help="Run the same experiment, study and model on SageMaker (needs: pip install "
    "'breedclf\\[aws]'). Every command takes --dry-run: it prints the exact requests and sends "
    "nothing.",
    no_args_is_help=True,
)
tune_app = typer.Typer(
    cls=_RunByDefault,
    help="SageMaker tuning jobs: breedclf aws tune STUDY.yaml, breedclf aws tune show JOB.",
    no_args_is_help=True,
)
aws_app.add_typer(tune_app, name="tune")

AwsOption = Annotated[
    Path, typer.Option("--aws", help="The AWS config YAML (region, role, bucket, instances).")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the exact requests; send nothing.")]
DEFAULT_AWS = Path("aws.yaml")
DataOption = Annotated[
    str, typer.Option(help="s3:// prefix of the dataset, or a name uploaded with aws upload.")
]


def _session(path: Path) -> AwsSession:
    import breedclf.aws

    config = breedclf.aws.load_aws_config(path)
    session: AwsSession = breedclf.aws.AwsSession(config, echo=typer.echo)  # needs the extra
    return session


def _data_uri(session: AwsSession, data: str) -> str:
    return data if data.startswith("s3://") else session.aws.s3_uri("data", data)


@aws_app.command("upload")
def upload(
    data_dir: Annotated[Path, typer.Argument(help="The image folder (ImageFolder layout).")],
    aws: AwsOption = DEFAULT_AWS,
    name: Annotated[
        str | None, typer.Option(help="Folder name under data/ (default: DATA_DIR's name).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Files uploaded at once.")] = 8,
    dry_run: DryRun = False,
) -> None:
    """Check DATA_DIR (breedclf data check), then upload it to S3; files already there are
    skipped (same size and SHA-256), so an interrupted upload resumes."""
    from breedclf.data import check_images

    session = _session(aws)
    report = check_images(data_dir)
    typer.echo(f"checked {report.checked} images under {report.root}")
    for path, reason in report.bad:
        typer.echo(f"  unreadable (training skips it): {path}: {reason}")
    result = session.upload_data(data_dir, name=name, dry_run=dry_run, workers=workers)
    typer.echo(f"data: {result.uri}")


@aws_app.command("train")
def train(
    config: Annotated[Path, typer.Argument(help="Experiment YAML (as for breedclf train).")],
    data: DataOption,
    aws: AwsOption = DEFAULT_AWS,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a value, sent as a hyperparameter: --set k=v"),
    ] = None,
    job_name: Annotated[str | None, typer.Option(help="Job name (default: name-time).")] = None,
    wait: Annotated[bool, typer.Option(help="Stream the logs and wait for the end.")] = True,
    out: Annotated[
        Path | None,
        typer.Option(help="Download the model and outputs here (default runs/aws/JOB)."),
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Train CONFIG in a SageMaker training job (the same run() as breedclf train)."""
    from breedclf.aws._requests import job_name as make_job_name
    from breedclf.aws._session import _stamp
    from breedclf.config import load_config

    session = _session(aws)
    experiment = load_config(config)
    # Named here, so the default download folder is the job's own (runs/aws/JOB), not shared.
    name = job_name or make_job_name(experiment.name, _stamp())
    request = session.train(
        experiment,
        data_uri=_data_uri(session, data),
        overrides=parse_overrides(set_ or []),
        name=name,
        dry_run=dry_run,
        wait=wait,
        download_to=out or Path("runs/aws") / name,
    )
    if not dry_run and wait:
        typer.echo(f"deploy it: breedclf aws deploy {_model_uri(request)}")


def _model_uri(request: dict[str, object]) -> str:
    output = request["OutputDataConfig"]
    assert isinstance(output, dict)
    return f"{output['S3OutputPath']}/{request['TrainingJobName']}/output/model.tar.gz"


@tune_app.command("run")
def tune_run(
    study: Annotated[Path, typer.Argument(help="Study YAML (as for breedclf tune).")],
    data: DataOption,
    aws: AwsOption = DEFAULT_AWS,
    strategy: Annotated[
        str | None,
        typer.Option(help="Bayesian, Random, Hyperband or Grid (default: from the study)."),
    ] = None,
    job_name: Annotated[str | None, typer.Option(help="Job name (≤ 32 characters).")] = None,
    dry_run: DryRun = False,
) -> None:
    """Start a SageMaker tuning job for the study file."""
    session = _session(aws)
    session.tune(
        study, data_uri=_data_uri(session, data), name=job_name, strategy=strategy, dry_run=dry_run
    )


@tune_app.command("show")
def tune_show(
    job: Annotated[str, typer.Argument(help="The tuning job's name.")],
    aws: AwsOption = DEFAULT_AWS,
    out: Annotated[
        Path | None, typer.Option(help="Where trials.csv and best/ go (default runs/aws/JOB).")
    ] = None,
) -> None:
    """List the trials of a tuning job and write best/config.yaml like a local study."""
    session = _session(aws)
    result = session.tuning_result(job, out or Path("runs/aws") / job)
    status = result.job["HyperParameterTuningJobStatus"]
    typer.echo(f"tuning job {job}: {status}, {len(result.trials)} trials")
    for trial in result.trials:
        metric = trial.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value", "-")
        params = ", ".join(f"{k}={v}" for k, v in trial.get("TunedHyperParameters", {}).items())
        typer.echo(
            f"  {trial['TrainingJobName']}  {trial['TrainingJobStatus']:<10} {metric}  {params}"
        )
    if result.best_config_path is not None:
        best = result.job["BestTrainingJob"]
        typer.echo(f"best trial {best['TrainingJobName']}")
        typer.echo(f"best config: {result.best_config_path}")
        typer.echo(f"train it: breedclf aws train {result.best_config_path} --data ...")


@aws_app.command("deploy")
def deploy(
    model: Annotated[str, typer.Argument(help="A saved model directory or s3://.../model.tar.gz.")],
    aws: AwsOption = DEFAULT_AWS,
    name: Annotated[str | None, typer.Option(help="Endpoint name (default: model-time).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until it is in service.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 1800.0,
    dry_run: DryRun = False,
) -> None:
    """Deploy a model: Model + EndpointConfig + Endpoint on the PyTorch inference image."""
    session = _session(aws)
    predictor = session.deploy(model, name=name, dry_run=dry_run, wait=wait, timeout_s=timeout)
    if not dry_run:
        typer.echo(f"endpoint: {predictor.endpoint}")
        typer.echo(f"try: breedclf aws invoke {predictor.endpoint} IMAGE.jpg")
        typer.echo(f"delete it when done: breedclf aws delete {predictor.endpoint}")


@aws_app.command("invoke")
def invoke(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    image: Annotated[Path, typer.Argument(help="An image file (JPEG, PNG, WebP).")],
    aws: AwsOption = DEFAULT_AWS,
    top_k: Annotated[int, typer.Option(min=1, help="Predictions to show.")] = 5,
    dry_run: DryRun = False,
) -> None:
    """Classify IMAGE on ENDPOINT: labelled top-k predictions."""
    session = _session(aws)
    data = image.read_bytes()
    if dry_run:
        typer.echo(
            f"InvokeEndpoint {endpoint}: {len(data):,} bytes, ContentType application/x-image, "
            f"Accept application/json, CustomAttributes top_k={top_k}"
        )
        return
    for p in session.invoke(endpoint, data, content_type="application/x-image", top_k=top_k):
        typer.echo(f"  {p['probability']:6.1%}  {p['label']}  (index {p['index']})")


@aws_app.command("delete")
def delete(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    aws: AwsOption = DEFAULT_AWS,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the deletion.")] = 600.0,
    dry_run: DryRun = False,
) -> None:
    """Delete an endpoint, its endpoint config and its model (billing stops)."""
    _session(aws).delete_endpoint(endpoint, dry_run=dry_run, timeout_s=timeout)


@aws_app.command("stop")
def stop(
    job: Annotated[str, typer.Argument(help="A training or tuning job name.")],
    aws: AwsOption = DEFAULT_AWS,
    dry_run: DryRun = False,
) -> None:
    """Stop a training job or a tuning job."""
    _session(aws).stop(job, dry_run=dry_run)
