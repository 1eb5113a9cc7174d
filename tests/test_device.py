"""One device resolver and one precision rule, for training and loading alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from breedclf._device import resolve_amp, resolve_device
from breedclf.config import TrainingConfig
from breedclf.errors import ConfigurationError
from breedclf.models import ImageClassifier, create_model
from breedclf.saved_model import load_model, save_model
from breedclf.training import Trainer
from tests.training.conftest import first_conv, random_batches, small_cnn

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


def _lite0() -> ImageClassifier:
    return create_model("efficientnet_lite0", num_classes=3, weights=None)


no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


@pytest.mark.parametrize(
    ("choice", "capability", "expected"),
    [
        pytest.param("auto", (7, 5), torch.float16, id="auto-T4"),
        pytest.param("auto", (7, 0), torch.float16, id="auto-V100"),
        pytest.param("auto", (8, 0), torch.bfloat16, id="auto-A100"),
        pytest.param("auto", (9, 0), torch.bfloat16, id="auto-H100"),
        pytest.param("fp16", (9, 0), torch.float16, id="fp16-H100"),
        pytest.param("bf16", (8, 6), torch.bfloat16, id="bf16-A10"),
        pytest.param("off", (9, 0), None, id="off"),
    ],
)
def test_amp_on_cuda_follows_compute_capability(
    choice: str, capability: tuple[int, int], expected: torch.dtype | None
) -> None:
    assert resolve_amp(choice, CUDA, capability=capability) == expected  # type: ignore[arg-type]


def test_explicit_bf16_on_an_old_gpu_runs_but_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert resolve_amp("bf16", CUDA, capability=(7, 5)) == torch.bfloat16
    assert "emulated" in caplog.text


def test_amp_on_cpu() -> None:
    assert resolve_amp("auto", CPU) is None
    assert resolve_amp("off", CPU) is None
    assert resolve_amp("bf16", CPU) == torch.bfloat16
    with pytest.raises(ConfigurationError, match=r"training\.amp='fp16' is not supported on CPU"):
        resolve_amp("fp16", CPU)


def test_amp_on_mps_is_off_unless_refused() -> None:
    mps = torch.device("mps")
    assert resolve_amp("auto", mps) is None
    with pytest.raises(ConfigurationError, match=r"set training\.amp to 'off'"):
        resolve_amp("bf16", mps)


def test_trainer_refuses_fp16_on_cpu() -> None:
    with pytest.raises(ConfigurationError, match="'bf16' \\(CPU autocast\\) or 'off'"):
        Trainer(small_cnn(), training=TrainingConfig(amp="fp16", device="cpu"))


def test_bf16_on_cpu_trains_under_autocast() -> None:
    seen: list[torch.dtype] = []

    def record(module: torch.nn.Module, args: object, output: torch.Tensor) -> None:
        seen.append(output.dtype)

    model = small_cnn()
    first_conv(model).register_forward_hook(record)
    trainer = Trainer(model, training=TrainingConfig(epochs=1, amp="bf16", device="cpu"))
    assert trainer.amp_dtype == torch.bfloat16
    assert not trainer.scaler.is_enabled()
    history = trainer.fit(random_batches(2))
    assert seen and all(dtype == torch.bfloat16 for dtype in seen)
    assert torch.isfinite(torch.tensor(history[0]["train"]["loss"]))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32


def test_resolve_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected  # never MPS, even on a Mac
    assert resolve_device("cpu") == CPU
    assert resolve_device(CPU) == CPU
    with pytest.raises(ConfigurationError, match=r"training\.device='gpu' is not a device"):
        resolve_device("gpu")
    with pytest.raises(ConfigurationError, match="runs on 'cpu', 'cuda"):
        resolve_device("meta")


@no_cuda
def test_missing_cuda_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="CUDA is not available"):
        resolve_device("cuda:0")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks a machine without MPS")
def test_missing_mps_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="MPS is not available"):
        resolve_device("mps")


def test_load_model_resolves_devices_like_the_trainer(tmp_path: Path) -> None:
    save_model(_lite0(), ["a", "b", "c"], tmp_path / "m")
    loaded = load_model(tmp_path / "m", device="auto")
    assert loaded.device == resolve_device("auto")
    assert next(loaded.model.parameters()).device.type == loaded.device.type


@no_cuda
def test_load_model_on_missing_cuda_says_so(tmp_path: Path) -> None:
    save_model(_lite0(), ["a", "b", "c"], tmp_path / "m")
    with pytest.raises(ConfigurationError, match="device='cuda' but CUDA is not available"):
        load_model(tmp_path / "m", device="cuda")


@pytest.mark.skipif(not torch.backends.mps.is_available(), reason="needs Apple MPS")
def test_metrics_accumulate_in_float32_on_mps() -> None:
    from breedclf.training import ClassificationMetrics

    metrics = ClassificationMetrics(3, torch.device("mps"))
    metrics.update(torch.eye(3, device="mps"), torch.arange(3, device="mps"), torch.tensor(0.5))
    assert metrics.compute()["loss"] == pytest.approx(0.5)
