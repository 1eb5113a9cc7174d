from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from breedclf import load_model, save_model
from breedclf.errors import CheckpointError
from breedclf.models import ImageClassifier, create_model
from breedclf.preprocessing import create_transform


def _model() -> ImageClassifier:
    model = create_model(
        "efficientnet_lite0",
        num_classes=3,
        weights="DEFAULT",
        generator=torch.Generator().manual_seed(0),
    )
    model.preprocess = model.preprocess.with_input_size(96)
    model.eval()
    return model


def test_loaded_model_predicts_like_the_in_memory_one(tmp_path: Path, chelsea: Image.Image) -> None:
    model = _model()
    classes = ["Affenpinscher", "Afghan hound", "Airedale terrier"]
    save_model(model, classes, tmp_path / "m", metrics={"valid": {"acc": 0.5}})
    loaded = load_model(tmp_path / "m")
    assert not loaded.model.training
    assert loaded.classes == classes
    assert loaded.preprocess == model.preprocess

    x = create_transform(model.preprocess, train=False)(chelsea).unsqueeze(0)
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1)[0]
    preds = loaded.predict(chelsea, top_k=3)
    assert [p["index"] for p in preds] == expected.argsort(descending=True).tolist()
    for p in preds:
        assert p["label"] == classes[p["index"]]
        assert p["probability"] == pytest.approx(float(expected[p["index"]]), abs=1e-5)
    assert sum(p["probability"] for p in preds) == pytest.approx(1.0, abs=1e-5)
    batch = loaded.predict([chelsea, chelsea], top_k=1)
    assert len(batch) == 2
    assert batch[0][0]["index"] == preds[0]["index"]
    assert batch[0][0]["probability"] == pytest.approx(preds[0]["probability"], abs=1e-5)


def test_saved_files_are_pickle_free_and_self_describing(tmp_path: Path) -> None:
    save_model(_model(), ["a", "b", "c"], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["breedclf.json", "model.safetensors"]
    meta = json.loads((tmp_path / "breedclf.json").read_text())
    assert meta["arch"] == "efficientnet_lite0"
    assert meta["classes"] == ["a", "b", "c"]
    assert meta["preprocess"]["input_size"] == 96
    assert {"torch", "torchvision", "breedclf"} <= set(meta["versions"])
    # safetensors: an 8-byte little-endian header length, then a JSON header, then raw tensor
    # bytes. A torch.save file would be a zip (b"PK") holding a pickle; neither is possible here.
    raw = (tmp_path / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert header["__metadata__"] == {"format": "pt", "arch": "efficientnet_lite0"}
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    assert tensors and all({"dtype", "shape", "data_offsets"} <= set(v) for v in tensors.values())
    assert 8 + header_len + max(v["data_offsets"][1] for v in tensors.values()) == len(raw)
    assert b"PK\x03\x04" not in raw[:16] and b"\x80\x02" not in raw[:16]


def test_load_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"breedclf\.json is missing"):
        load_model(tmp_path)
    save_model(_model(), ["a", "b", "c"], tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="3 class names given for a model with 2 outputs"):
        save_model(
            create_model("resnet18", num_classes=2, weights=None), ["a", "b", "c"], tmp_path / "x"
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_model_loads_on_cpu(tmp_path: Path, chelsea: Image.Image) -> None:
    model = _model().cuda()
    save_model(model, ["a", "b", "c"], tmp_path)
    loaded = load_model(tmp_path, device="cpu")
    assert next(loaded.model.parameters()).device.type == "cpu"
    assert len(loaded.predict(chelsea)) == 3
