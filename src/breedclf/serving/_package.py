"""Package a saved model as ``model.tar.gz`` for SageMaker's PyTorch inference container.

Layout (what the container expects)::

    model.safetensors, breedclf.json, experiment.yaml   the saved model, at the top level
    code/inference.py                                   imports breedclf's four handlers
    code/requirements.txt                               pip-installed by the container at start
    code/breedclf/...                                   breedclf's own source, vendored

breedclf is vendored rather than pip-installed because the container's ``code/`` directory is on
``PYTHONPATH`` and needs no index or network access, and because the exact library that wrote
the model then serves it. ``requirements.txt`` lists only breedclf's light dependencies (pydantic,
PyYAML, safetensors, Pillow, NumPy); torch and torchvision come with the container and are never
reinstalled.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import io
import re
import tarfile
from collections.abc import Iterable
from pathlib import Path

import breedclf
from breedclf._io import atomic_path
from breedclf.errors import CheckpointError
from breedclf.saved_model import CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE, load_model

__all__ = ["CONTAINER_REQUIREMENTS", "INFERENCE_SCRIPT", "package_model"]

# breedclf's runtime dependencies that serving needs and the container may lack. torch and
# torchvision are deliberately absent: pip would replace the container's CUDA build.
CONTAINER_REQUIREMENTS = ("pydantic", "pyyaml", "safetensors", "pillow", "numpy")
_FALLBACK_SPECIFIERS = {
    "pydantic": "pydantic>=2.7",
    "pyyaml": "pyyaml>=6.0",
    "safetensors": "safetensors>=0.4",
    "pillow": "pillow>=10.0",
    "numpy": "numpy>=1.26",
}

INFERENCE_SCRIPT = '''\
"""SageMaker PyTorch inference entry point, written by `breedclf package`.

The container imports this module and calls model_fn once, then input_fn -> predict_fn ->
output_fn per request. breedclf itself is vendored beside this file (code/breedclf).
"""

from breedclf.serving import input_fn, model_fn, output_fn, predict_fn

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]
'''

_VENDORED_SUFFIXES = {".py", ".typed", ".html", ".js", ".css"}


def package_model(model_dir: str | Path, output: str | Path) -> Path:
    """Write ``model.tar.gz`` for SageMaker's PyTorch inference container.

    The saved model is loaded first, so a directory that is not a complete, loadable breedclf
    model is refused here rather than on the endpoint. The archive is reproducible: the same
    model and breedclf version give the same bytes.

    Args:
        model_dir: A directory written by :func:`breedclf.save_model`.
        output: The archive to write (conventionally ``model.tar.gz``).

    Returns:
        The archive's path.

    Raises:
        CheckpointError: ``model_dir`` is not a loadable saved model.

    Example:
        >>> package_model("runs/demo/model", "model.tar.gz")  # doctest: +SKIP
        PosixPath('model.tar.gz')
    """
    source = Path(model_dir)
    load_model(source, device="cpu")  # refuses incomplete or mismatched artifacts
    members: list[tuple[str, bytes]] = []
    for name in (WEIGHTS_FILE, METADATA_FILE, CONFIG_FILE):
        path = source / name
        if path.is_file():
            members.append((name, path.read_bytes()))
    members.append(("code/inference.py", INFERENCE_SCRIPT.encode("utf-8")))
    members.append(("code/requirements.txt", container_requirements().encode("utf-8")))
    package_root = Path(breedclf.__file__).parent
    for path in sorted(package_root.rglob("*")):
        relative = path.relative_to(package_root)
        if (
            path.is_file()
            and path.suffix in _VENDORED_SUFFIXES
            and "__pycache__" not in relative.parts
        ):
            members.append((f"code/breedclf/{relative.as_posix()}", path.read_bytes()))
    if not any(name == f"code/breedclf/serving/{Path(__file__).name}" for name, _ in members):
        raise CheckpointError(f"cannot find breedclf's source to vendor under {package_root}")

    out = Path(output)
    with (
        atomic_path(out) as tmp,
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for directory in sorted(_parents(name for name, _ in members)):
            tar.addfile(_tar_info(directory, 0, is_dir=True))
        for name, data in members:
            tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))
    return out


def container_requirements() -> str:
    """``requirements.txt`` for the container: breedclf's serving dependencies, pinned as in
    breedclf's own metadata."""
    specifiers = dict(_FALLBACK_SPECIFIERS)
    try:
        declared = importlib.metadata.requires("breedclf") or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    for requirement in declared:
        if ";" in requirement:  # extras and environment markers
            continue
        match = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
        if match:
            name = match.group(1).lower().replace("_", "-")
            if name in specifiers:
                specifiers[name] = requirement.strip()
    lines = [
        "# Installed by the SageMaker PyTorch inference container at start-up (written by",
        "# `breedclf package`). torch and torchvision come with the container.",
        *(specifiers[name] for name in CONTAINER_REQUIREMENTS),
    ]
    return "\n".join(lines) + "\n"


def _parents(names: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for name in names:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return out


def _tar_info(name: str, size: int, *, is_dir: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 0 if is_dir else size
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
