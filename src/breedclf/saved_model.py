"""Saved models: safetensors weights + JSON metadata, loadable without pickle or training code.

A saved model directory holds:

* ``model.safetensors`` — the weights of the :class:`~breedclf.models.ImageClassifier`;
* ``breedclf.json`` — format version, architecture, class names (index order), preprocessing
  spec, metrics, library versions;
* ``experiment.yaml`` — the experiment configuration that trained it (when known);
* ``splits.json`` — the exact files of its train/valid/test splits (when known).

Example:
    >>> model = load_model("runs/demo/model")            # doctest: +SKIP
    >>> model.predict("dog.jpg", top_k=3)                 # doctest: +SKIP
    [{'label': 'Labrador retriever', 'index': 95, 'probability': 0.91}, ...]
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, overload

import torch

from breedclf._device import resolve_device
from breedclf._io import atomic_directory, save_weights
from breedclf.config import ExperimentConfig, dump_config
from breedclf.data._images import DEFAULT_MAX_PIXELS, ImageSource, load_image
from breedclf.errors import CheckpointError, ImageDecodeError
from breedclf.models import ImageClassifier, create_model, load_weights
from breedclf.preprocessing import PreprocessSpec, create_transform

if TYPE_CHECKING:
    from breedclf.data import DatasetSplits

__all__ = [
    "FORMAT_VERSION",
    "METADATA_FILE",
    "WEIGHTS_FILE",
    "Prediction",
    "SavedModel",
    "load_model",
    "save_model",
]

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "breedclf.json"
CONFIG_FILE = "experiment.yaml"
MANIFEST_FILE = "splits.json"


class Prediction(TypedDict):
    """One labelled class score."""

    label: str
    index: int
    probability: float


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model's numerics, recorded with each save."""
    import numpy
    import PIL
    import torchvision

    from breedclf import __version__

    return {
        "breedclf": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
    }


def save_model(
    model: ImageClassifier,
    classes: Sequence[str],
    directory: str | Path,
    *,
    config: ExperimentConfig | None = None,
    metrics: dict[str, Any] | None = None,
    splits: DatasetSplits | None = None,
) -> Path:
    """Write ``model`` and everything needed to use it to ``directory``.

    The directory is written as a whole: the files go to a temporary sibling directory, which
    then replaces ``directory`` in one atomic swap (Linux; elsewhere two renames), so a crash
    never pairs new weights with old metadata. Files get the usual permissions (``0o666`` less
    the umask), readable by other users and containers.

    Args:
        model: The trained classifier.
        classes: Class names in index order (``classes[i]`` is the label of output ``i``).
        directory: Created if missing; an earlier saved model there is replaced whole.
        config: The experiment that trained the model, saved as ``experiment.yaml``.
        metrics: Final metrics (e.g. validation and test accuracy), stored in the metadata.
        splits: The exact train/valid/test files, saved as ``splits.json`` so the model is
            later evaluated on its own held-out files.

    Returns:
        The directory.

    Raises:
        CheckpointError: The class list does not match the model's head, or ``directory``
            holds something other than a saved model (it is never replaced then).
    """
    if len(classes) != model.num_classes:
        raise CheckpointError(
            f"{len(classes)} class names given for a model with {model.num_classes} outputs"
        )
    out = Path(directory)
    if out.exists() and not (out / METADATA_FILE).is_file() and any(out.iterdir()):
        raise CheckpointError(
            f"{out} exists and is not a saved breedclf model (no {METADATA_FILE}); refusing to "
            "replace it: save into a new or empty directory"
        )
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out} exists and is not a directory")
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "arch": model.arch,
        "num_classes": model.num_classes,
        "dropout": float(model.dropout.p),
        "classes": list(classes),
        "preprocess": model.preprocess.model_dump(mode="json"),
        "metrics": metrics or {},
        "versions": library_versions(),
        "experiment": config.name if config else None,
    }
    with atomic_directory(out) as tmp:
        save_weights(model, tmp / WEIGHTS_FILE, metadata={"format": "pt", "arch": model.arch})
        (tmp / METADATA_FILE).write_text(
            json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8"
        )
        if config is not None:
            dump_config(config, tmp / CONFIG_FILE)
        if splits is not None:
            splits.write_manifest(tmp / MANIFEST_FILE)
    return out


class SavedModel:
    """A loaded classifier with its labels and preprocessing, ready for inference.

    Attributes:
        model: The network, in eval mode, on ``device``.
        classes: Class names in output order.
        preprocess: The spec every input is prepared with.
        metadata: The parsed ``breedclf.json``.
        device: Where inference runs.
    """

    def __init__(
        self,
        model: ImageClassifier,
        classes: Sequence[str],
        *,
        metadata: dict[str, Any] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.classes = list(classes)
        self.preprocess: PreprocessSpec = model.preprocess
        self.metadata = metadata or {}
        self._transform = create_transform(self.preprocess, train=False)

    @property
    def directory(self) -> Path | None:
        """Where the model was loaded from, if it was."""
        raw = self.metadata.get("directory")
        return Path(raw) if raw else None

    def preprocess_image(
        self, image: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
    ) -> torch.Tensor:
        """Decode ``image`` and apply the model's evaluation transform → ``[3, H, W]``.

        Raises:
            ImageDecodeError: The input is not a decodable image or is too large.
        """
        pil = load_image(image, max_pixels=max_pixels, draft_size=self.preprocess.resize_size)
        return self._transform(pil)

    def predict_batch(self, batch: torch.Tensor, *, top_k: int = 5) -> list[list[Prediction]]:
        """Top-``k`` labelled predictions for a preprocessed batch ``[N, 3, H, W]``."""
        if batch.ndim != 4:
            raise ImageDecodeError(
                f"expected a batch of shape [N, 3, H, W], got {list(batch.shape)}"
            )
        k = max(1, min(int(top_k), self.model.num_classes))
        with torch.inference_mode():
            logits = self.model(batch.to(self.device, non_blocking=True))
            probs = torch.softmax(logits.float(), dim=1)
            top = torch.topk(probs, k, dim=1)
        values, indices = top.values.cpu().tolist(), top.indices.cpu().tolist()
        return [
            [
                Prediction(label=self.classes[i], index=int(i), probability=float(p))
                for p, i in zip(row_p, row_i, strict=True)
            ]
            for row_p, row_i in zip(values, indices, strict=True)
        ]

    @overload
    def predict(self, images: ImageSource, *, top_k: int = 5) -> list[Prediction]: ...

    @overload
    def predict(
        self, images: list[ImageSource] | tuple[ImageSource, ...], *, top_k: int = 5
    ) -> list[list[Prediction]]: ...

    def predict(
        self,
        images: ImageSource | list[ImageSource] | tuple[ImageSource, ...],
        *,
        top_k: int = 5,
    ) -> list[Prediction] | list[list[Prediction]]:
        """Labelled top-``k`` predictions for one image or a list of images.

        Args:
            images: A path, bytes, file object or PIL image — or a sequence of them.
            top_k: How many classes to return per image (capped at the class count).

        Returns:
            For one image, a list of ``{"label", "index", "probability"}`` sorted by probability;
            for a sequence, one such list per image.
        """
        if not isinstance(images, list | tuple):
            return self.predict_batch(self.preprocess_image(images).unsqueeze(0), top_k=top_k)[0]
        seq: list[ImageSource] = list(images)
        if not seq:
            return []
        batch = torch.stack([self.preprocess_image(x) for x in seq])
        return self.predict_batch(batch, top_k=top_k)


def load_model(directory: str | Path, *, device: str | torch.device = "cpu") -> SavedModel:
    """Load a directory written by :func:`save_model` (no pickle is ever unpickled).

    Args:
        directory: The saved model directory.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, or ``"auto"`` (CUDA when present,
            else CPU: the trainer's rule, :func:`breedclf._device.resolve_device`). Weights
            are mapped there whatever device they were trained on.

    Raises:
        CheckpointError: Files are missing, the metadata is unreadable, or the format is newer
            than this breedclf understands.
        ConfigurationError: ``device`` is not a device or not available here.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = Path(directory)
    meta_path, weights_path = root / METADATA_FILE, root / WEIGHTS_FILE
    for path in (meta_path, weights_path):
        if not path.is_file():
            raise CheckpointError(
                f"{root} is not a saved breedclf model: {path.name} is missing "
                f"(expected {METADATA_FILE} and {WEIGHTS_FILE}, written by save_model)"
            )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        version = int(meta["format_version"])
        arch, classes = str(meta["arch"]), [str(c) for c in meta["classes"]]
        spec = PreprocessSpec.model_validate(meta["preprocess"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{meta_path} is corrupt: {exc}") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{root} uses saved-model format {version}; this breedclf reads up to "
            f"{FORMAT_VERSION}. Upgrade breedclf."
        )
    target = resolve_device(device, field="device")
    model = create_model(
        arch, num_classes=len(classes), weights=None, dropout=float(meta.get("dropout", 0.0))
    )
    model.preprocess = spec
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path} is corrupt: {exc}") from None
    load_weights(model, state)
    meta["directory"] = str(root)
    return SavedModel(model, classes, metadata=meta, device=target)
