"""The training entry point run by AWS's real ``sagemaker-training`` toolkit (its ``train``
console script) against a fake ``/opt/ml`` tree, the way a tuning job's container runs it."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from breedclf.aws import metric_definitions, write_source_bundle
from breedclf.aws.entry import parse_arguments
from breedclf.config import ExperimentConfig, override
from breedclf.errors import ConfigurationError
from breedclf.serving import package_model
from breedclf.training import format_metrics_line
from tests.serving.test_package import CONTAINER_SCRIPT

TRAIN = Path(sys.executable).parent / "train"  # sagemaker-training's console script
TIMEOUT_S = 300


def _experiment() -> ExperimentConfig:
    return override(
        ExperimentConfig(),
        {
            "name": "textures-on-sagemaker",
            "data.image_size": 32,
            "data.num_workers": 0,
            "training.epochs": 1,
            "training.batch_size": 32,
        },
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_source_bundle(_experiment(), tmp_path_factory.mktemp("src") / "sourcedir.tar.gz")


@dataclass
class FakeJob:
    """A SageMaker container's ``/opt/ml`` tree, run with the toolkit."""

    base: Path
    log: Path

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def checkpoints(self) -> Path:
        return self.base / "checkpoints"

    def start(self, job_name: str = "job-1") -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "SAGEMAKER_BASE_DIR": str(self.base),
            "TRAINING_JOB_NAME": job_name,
            "OMP_NUM_THREADS": "1",
        }
        env.pop("PYTHONPATH", None)
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [str(TRAIN)],
                cwd=self.base,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def run(self) -> int:
        return self.start().wait(timeout=TIMEOUT_S)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def restart_container(self) -> None:
        """What a spot restart keeps: the checkpoints (synced with S3) and the inputs."""
        for name in ("model", "output"):
            shutil.rmtree(self.base / name)
            (self.base / name).mkdir()
        (self.base / "output" / "data").mkdir()


def make_job(
    root: Path, textures_root: Path, bundle: Path, hyperparameters: dict[str, str]
) -> FakeJob:
    base = root / "opt-ml"
    config = base / "input" / "config"
    for folder in (config, base / "model", base / "output" / "data", base / "code"):
        folder.mkdir(parents=True)
    shutil.copytree(textures_root, base / "input" / "data" / "data")
    # What SageMaker writes: every value a string; the SDK's static ones JSON-encoded, a tuning
    # job's tuned ones raw ("0.002", "sgd").
    static = {
        "sagemaker_program": json.dumps("breedclf_train.py"),
        "sagemaker_submit_directory": json.dumps(str(bundle)),
        "checkpoint-dir": json.dumps(str(base / "checkpoints")),
    }
    (config / "hyperparameters.json").write_text(json.dumps({**static, **hyperparameters}))
    host = socket.gethostname()  # every host must resolve
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": host, "hosts": [host], "network_interface_name": "lo"})
    )
    (config / "inputdataconfig.json").write_text(
        json.dumps({"data": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}})
    )
    return FakeJob(base, root / "job.log")


@pytest.fixture(scope="module")
def trained_job(
    tmp_path_factory: pytest.TempPathFactory, textures_root: Path, bundle: Path
) -> FakeJob:
    job = make_job(
        tmp_path_factory.mktemp("job"),
        textures_root,
        bundle,
        {"optimizer.name": "sgd", "optimizer.lr": "0.002", "training.seed": "7"},
    )
    assert job.run() == 0, job.output()[-4000:]
    return job


def test_hyperparameters_are_config_overrides(trained_job: FakeJob) -> None:
    config = json.loads((trained_job.model_dir / "breedclf.json").read_text())
    saved = (trained_job.model_dir / "experiment.yaml").read_text()
    assert "name: sgd" in saved
    assert re.search(r"\blr: 0\.002\b", saved)
    assert "seed: 7" in saved
    assert config["classes"] == ["brick", "grass", "gravel"] or "classes" in json.dumps(config)
    # The job's paths, not the shipped config's.
    assert f"checkpoint_dir: {trained_job.checkpoints / 'job-1'}" in saved
    assert (trained_job.checkpoints / "job-1" / "last.ckpt").is_file()


def test_model_dir_has_the_layout_of_breedclf_package(trained_job: FakeJob, tmp_path: Path) -> None:
    packaged = package_model(trained_job.model_dir, tmp_path / "model.tar.gz")
    with tarfile.open(packaged) as tar:
        expected = {m.name for m in tar.getmembers() if m.isfile()}
    written = {
        p.relative_to(trained_job.model_dir).as_posix()
        for p in trained_job.model_dir.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert expected <= written
    assert {"code/inference.py", "code/requirements.txt", "model.safetensors"} <= written


def test_metric_lines_parse_with_the_generated_regexes(trained_job: FakeJob) -> None:
    log = trained_job.output()
    regexes = {d["Name"]: re.compile(d["Regex"]) for d in metric_definitions()}
    valid_acc = [float(m) for m in regexes["valid:acc"].findall(log)]
    # One line per epoch and the final evaluation of the selected model, which the tuner reads.
    assert len(valid_acc) == 2
    final = json.loads((trained_job.base / "output" / "data" / "eval-valid.json").read_text())
    assert valid_acc[-1] == pytest.approx(final["acc"], rel=1e-5)
    assert regexes["train:loss"].findall(log)
    assert not any(r.search("split=test loss=1.0e+00 acc=5.0e-01") for r in regexes.values())
    nan_line = format_metrics_line("valid", {"loss": math.nan, "acc": 1e-05}, epoch=3)
    assert regexes["valid:loss"].search(nan_line).group(1) == "nan"  # type: ignore[union-attr]
    assert float(regexes["valid:acc"].search(nan_line).group(1)) == 1e-05  # type: ignore[union-attr]


def test_run_outputs_go_to_the_output_data_dir(trained_job: FakeJob) -> None:
    data = trained_job.base / "output" / "data"
    assert (data / "metrics.jsonl").is_file()
    assert (data / "config.yaml").is_file()


def test_the_jobs_model_tar_gz_serves_through_the_inference_handler_chain(
    trained_job: FakeJob, textures_root: Path, tmp_path: Path
) -> None:
    # SageMaker tars SM_MODEL_DIR as model.tar.gz; the endpoint extracts it to /opt/ml/model.
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(trained_job.model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    endpoint = tmp_path / "endpoint-model"
    with tarfile.open(archive) as tar:
        tar.extractall(endpoint, filter="data")
    image = next((textures_root / "test" / "brick").iterdir())
    env = {**os.environ, "PYTHONPATH": str(endpoint / "code"), "SAGEMAKER_PROGRAM": "inference.py"}
    done = subprocess.run(
        [sys.executable, "-c", CONTAINER_SCRIPT, str(endpoint), str(image), str(image)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert (
        next(x for x in lines if x.startswith("BREEDCLF_FROM "))
        .split(" ", 1)[1]
        .startswith(str(endpoint / "code" / "breedclf"))
    )
    results = json.loads(next(x for x in lines if x.startswith("RESULTS "))[8:])
    assert results["jpeg"]["status"] == 200
    top = json.loads(results["jpeg"]["body"])["predictions"]
    assert {p["label"] for p in top} == {"brick", "grass", "gravel"}
    assert lines[-1] == "ABSENT_LOADED []"  # neither boto3 nor the SageMaker SDK nor smdebug


def test_a_misspelled_hyperparameter_fails_the_job_with_the_closest_name(
    tmp_path: Path, textures_root: Path, bundle: Path
) -> None:
    job = make_job(tmp_path, textures_root, bundle, {"optimizer.lrr": "0.01"})
    assert job.run() != 0
    output = job.output()
    assert "unknown key 'lrr'" in output
    assert "did you mean 'lr'" in output
    assert (job.base / "output" / "failure").is_file()
    assert not (job.model_dir / "model.safetensors").exists()


@pytest.mark.slow
def test_a_restarted_job_resumes_from_the_checkpoint_dir(
    tmp_path: Path, textures_root: Path, bundle: Path
) -> None:
    job = make_job(tmp_path, textures_root, bundle, {"training.epochs": "2"})
    process = job.start()
    checkpoint = job.checkpoints / "job-1" / "last.ckpt"
    deadline = time.monotonic() + TIMEOUT_S
    while not checkpoint.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process.poll() is None, "the first run ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGKILL)  # a spot interruption
    process.wait(timeout=60)
    job.restart_container()
    assert job.run() == 0, job.output()[-4000:]
    output = job.output()
    resumed = re.search(r"resumed from \S+last\.ckpt after epoch (\d)", output)
    assert resumed is not None, output[-4000:]
    assert (job.model_dir / "code" / "inference.py").is_file()
    history = [
        json.loads(line)
        for line in (job.base / "output" / "data" / "metrics.jsonl").read_text().splitlines()
    ]
    epochs = [row["epoch"] for row in history if row.get("event") == "epoch"]
    # The restarted container trained only the epochs after its checkpoint.
    assert epochs == list(range(int(resumed.group(1)) + 1, 3))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["optimizer.lr", "1"], "unexpected argument 'optimizer.lr'", id="no-dashes"),
        pytest.param(["--optimizer.lr"], "--optimizer.lr has no value", id="no-value"),
    ],
)
def test_malformed_arguments_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        parse_arguments(argv)


def test_sm_hps_and_per_split_channels_without_arguments(tmp_path: Path) -> None:
    """A driver that passes no arguments (hyperparameters only in SM_HPS, as JSON values)."""
    from breedclf.aws.entry import _hyperparameters_from_env, build_config
    from breedclf.config import dump_config

    dump_config(_experiment(), tmp_path / "config.yaml")
    environ = {
        "SM_HPS": json.dumps(
            {"optimizer.lr": 0.01, "training.epochs": 3, "data.augment.hflip": False}
        ),
        "SM_CHANNEL_TRAIN": "/opt/ml/input/data/train",
        "SM_CHANNEL_VALIDATION": "/opt/ml/input/data/validation",
        "SM_MODEL_DIR": "/opt/ml/model",
        "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
        "SM_TRAINING_ENV": "{}",
        "TRAINING_JOB_NAME": "dogs-7",
    }
    arguments = parse_arguments(_hyperparameters_from_env(environ))
    config = build_config(arguments, environ, default_config=tmp_path / "config.yaml")
    assert config.optimizer.lr == 0.01
    assert config.training.epochs == 3
    assert config.data.augment.hflip is False
    assert config.data.root is None
    assert str(config.data.train_root) == "/opt/ml/input/data/train"
    assert str(config.data.valid_root) == "/opt/ml/input/data/validation"
    assert str(config.model_dir) == "/opt/ml/model"
    assert str(config.output_dir) == "/opt/ml/output/data"
    assert str(config.checkpoint_dir) == "/opt/ml/checkpoints/dogs-7"
