"""examples/notebooks/sagemaker.ipynb runs against the moto server (outputs stripped in the repo).

Its code cells run in order in one namespace, as a kernel would run them, with the parameters
cell overridden (papermill-style). Where moto runs no container, the test plays SageMaker's
part: after the training cell it puts the archives a training job leaves in S3, and before the
invoke cell it queues the endpoint's answer, computed by the real handler chain on the deployed
archive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from breedclf.serving import package_model
from tests.aws.conftest import (
    BUCKET,
    Connections,
    queue_endpoint_answer,
    s3,
    sagemaker,
    tar_gz,
    write_aws_config,
)
from tests.aws.test_commands import _serve_in_process

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebooks" / "sagemaker.ipynb"


def _cells() -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return [c for c in cells if c["cell_type"] == "code"]


def test_outputs_are_stripped() -> None:
    for cell in _cells():
        assert cell["outputs"] == [] and cell["execution_count"] is None


def test_the_sagemaker_notebook_runs_on_moto(
    aws_env: Connections,
    moto_url: str,
    tmp_path: Path,
    textures_root: Path,
    small_model_dir: Path,
    monkeypatch: Any,
) -> None:
    monkeypatch.chdir(tmp_path)
    experiment = {
        "name": "textures",
        "data": {"dataset": "imagefolder", "image_size": 32},
        "training": {"epochs": 2},
    }
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(experiment))
    study = {
        "experiment": "experiment.yaml",
        "study_dir": "runs/study",
        "trials": 4,
        "parallel": 2,
        "parameters": {
            "optimizer.lr": {"type": "continuous", "low": 1e-4, "high": 1e-2},
            "optimizer.name": {"type": "categorical", "values": ["sgd", "adamw"]},
        },
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    image = next((textures_root / "test" / "grass").iterdir())
    parameters = {
        "AWS_CONFIG": str(write_aws_config(tmp_path / "aws.yaml")),
        "DATA_DIR": str(textures_root),
        "STUDY": str(tmp_path / "study.yaml"),
        "IMAGE": str(image),
        "OUT": str(tmp_path / "runs" / "aws"),
    }
    namespace: dict[str, Any] = {}
    for i, cell in enumerate(_cells()):
        tags = cell["metadata"].get("tags", [])
        if "invoke" in tags:
            endpoint = namespace["predictor"].endpoint
            url = sagemaker().describe_model(ModelName=endpoint)["PrimaryContainer"]["ModelDataUrl"]
            archive = s3().get_object(Bucket=BUCKET, Key=url.split(f"{BUCKET}/", 1)[1])["Body"]
            queue_endpoint_answer(
                moto_url, _serve_in_process(archive.read(), image.read_bytes(), tmp_path)
            )
        exec(compile("".join(cell["source"]), f"sagemaker.ipynb[cell {i}]", "exec"), namespace)
        if "parameters" in tags:
            namespace.update(parameters)
        if "train" in tags:
            _leave_training_artifacts(namespace["training_job"], small_model_dir, tmp_path)

    # What the notebook did, as SageMaker (moto) saw it.
    best = yaml.safe_load((Path(namespace["result"].best_config_path)).read_text())
    assert best["optimizer"]["name"] == "sgd" and best["optimizer"]["lr"] == 0.0001
    assert best["training"]["monitor"] == "valid_acc"
    job = sagemaker().describe_training_job(TrainingJobName=namespace["training_job"])
    assert {r["RuleConfigurationName"] for r in job["DebugRuleConfigurations"]} >= {"Overfit"}
    shipped = namespace["training_request"]["HyperParameters"]["sagemaker_submit_directory"]
    assert json.loads(shipped).endswith("/source/sourcedir.tar.gz")
    downloaded = tmp_path / "runs" / "aws" / namespace["training_job"]
    assert (downloaded / "model" / "code" / "inference.py").is_file()
    assert sagemaker().list_endpoints()["Endpoints"] == []  # the last cell cleaned up
    assert aws_env.hosts() == {"127.0.0.1"}


def _leave_training_artifacts(job: str, model_dir: Path, tmp_path: Path) -> None:
    """What a finished training job leaves: model.tar.gz (the saved model with breedclf
    package's inference code) and output.tar.gz."""
    archive = package_model(model_dir, tmp_path / "job-model.tar.gz")
    s3().put_object(
        Bucket=BUCKET, Key=f"breedclf/jobs/{job}/output/model.tar.gz", Body=archive.read_bytes()
    )
    output = tar_gz({"metrics.jsonl": b'{"event": "epoch", "epoch": 1}\n'})
    s3().put_object(Bucket=BUCKET, Key=f"breedclf/jobs/{job}/output/output.tar.gz", Body=output)
