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

With ``vendor_dependencies=True`` (``breedclf package --vendor-deps``) there is no
``requirements.txt``: the container installs nothing at start-up, which network-isolated
endpoints require. The dependencies the container lacks are copied, as installed here, into
``code/lib`` (``inference.py`` puts it first on ``sys.path``): pydantic and pydantic-core,
PyYAML, safetensors and what they require. NumPy and Pillow are not copied: torchvision depends
on both, so every PyTorch container has them. Copying installed files works with no network at
all, but pydantic-core and safetensors are compiled: the copy runs only on the same Python
minor version and CPU architecture as the packaging machine, which ``code/lib/vendor.json``
records and ``inference.py`` checks first, with a readable error instead of an ImportError deep
in pydantic.
"""

from __future__ import annotations

import gzip
import importlib.machinery
import importlib.metadata
import io
import json
import platform
import re
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path

import breedclf
from breedclf._io import atomic_path
from breedclf.errors import CheckpointError
from breedclf.saved_model import CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE, load_model

__all__ = [
    "CONTAINER_REQUIREMENTS",
    "INFERENCE_SCRIPT",
    "VENDORED_INFERENCE_SCRIPT",
    "package_model",
    "vendored_distributions",
]

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

# Written by `breedclf package --vendor-deps`: standard library only until the check has passed.
VENDORED_INFERENCE_SCRIPT = '''\
"""SageMaker PyTorch inference entry point, written by `breedclf package --vendor-deps`.

breedclf's dependencies are vendored in code/lib (no requirements.txt, nothing is installed at
start-up). Compiled ones were copied from the packaging machine, so this checks first that this
container's Python and CPU match it.
"""

import importlib.machinery
import json
import os
import platform
import sys

_LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")


def _check_vendored(lib):
    with open(os.path.join(lib, "vendor.json"), encoding="utf-8") as file:
        built = json.load(file)
    here = {
        "python": "%d.%d" % sys.version_info[:2],
        "machine": platform.machine(),
    }
    suffixes = set(importlib.machinery.EXTENSION_SUFFIXES) - {".so"}
    missing = [s for s in built["extension_suffixes"] if s not in suffixes]
    if missing or any(built[key] != here[key] for key in here):
        raise RuntimeError(
            "this model.tar.gz vendors compiled dependencies for Python %s on %s "
            "(extension suffixes %s), but the container runs Python %s on %s (%s). Package it "
            "again with Python %s on %s (breedclf package --vendor-deps), or without "
            "--vendor-deps to pip-install requirements.txt at start-up."
            % (built["python"], built["machine"], ", ".join(built["extension_suffixes"]),
               here["python"], here["machine"], ", ".join(sorted(suffixes)), here["python"],
               here["machine"])
        )


_check_vendored(_LIB)
sys.path.insert(0, _LIB)

from breedclf.serving import input_fn, model_fn, output_fn, predict_fn  # noqa: E402

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]
'''

_VENDORED_SUFFIXES = {".py", ".typed", ".html", ".js", ".css"}
# Every PyTorch inference container has these (torchvision requires NumPy and Pillow; torch
# requires typing-extensions and has imported it before code/lib is on the path): never copied,
# so the container's builds stay in charge.
_CONTAINER_PROVIDES = frozenset({"torch", "torchvision", "numpy", "pillow", "typing-extensions"})


def package_model(
    model_dir: str | Path, output: str | Path, *, vendor_dependencies: bool = False
) -> Path:
    """Write ``model.tar.gz`` for SageMaker's PyTorch inference container.

    The saved model is loaded first, so a directory that is not a complete, loadable breedclf
    model is refused here rather than on the endpoint. The archive is reproducible: the same
    model and breedclf version give the same bytes.

    Args:
        model_dir: A directory written by :func:`breedclf.save_model`.
        output: The archive to write (conventionally ``model.tar.gz``).
        vendor_dependencies: Copy the dependencies the container lacks into ``code/lib``
            instead of writing ``code/requirements.txt``, so the endpoint installs nothing at
            start-up (network-isolated endpoints). Run it with the container's Python version
            on its CPU architecture: compiled dependencies are copied as installed here.

    Returns:
        The archive's path.

    Raises:
        CheckpointError: ``model_dir`` is not a loadable saved model, or a dependency to vendor
            is not installed here.

    Example:
        >>> package_model("runs/demo/model", "model.tar.gz")  # doctest: +SKIP
        PosixPath('model.tar.gz')
        >>> package_model(model_dir, "offline.tar.gz", vendor_dependencies=True)  # doctest: +SKIP
    """
    source = Path(model_dir)
    load_model(source, device="cpu")  # refuses incomplete or mismatched artifacts
    members: list[tuple[str, bytes]] = []
    for name in (WEIGHTS_FILE, METADATA_FILE, CONFIG_FILE):
        path = source / name
        if path.is_file():
            members.append((name, path.read_bytes()))
    if vendor_dependencies:
        members.append(("code/inference.py", VENDORED_INFERENCE_SCRIPT.encode("utf-8")))
        members.extend(_vendored_members())
    else:
        members.append(("code/inference.py", INFERENCE_SCRIPT.encode("utf-8")))
        members.append(("code/requirements.txt", container_requirements().encode("utf-8")))
    members.extend(source_members("code/breedclf"))
    if not any(name == f"code/breedclf/serving/{Path(__file__).name}" for name, _ in members):
        raise CheckpointError(
            f"cannot find breedclf's source to vendor under {Path(breedclf.__file__).parent}"
        )

    return write_archive(members, output)


def write_archive(members: list[tuple[str, bytes]], output: str | Path) -> Path:
    """Write ``(name, bytes)`` members as a reproducible ``.tar.gz`` (fixed times and owners)."""
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


def source_members(prefix: str) -> list[tuple[str, bytes]]:
    """breedclf's own source files (``.py``, ``py.typed``, the web page's assets) under
    ``prefix``, sorted: what an archive vendors."""
    package_root = Path(breedclf.__file__).parent
    members = []
    for path in sorted(package_root.rglob("*")):
        relative = path.relative_to(package_root)
        if (
            path.is_file()
            and path.suffix in _VENDORED_SUFFIXES
            and "__pycache__" not in relative.parts
        ):
            members.append((f"{prefix}/{relative.as_posix()}", path.read_bytes()))
    return members


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


def vendored_distributions() -> list[str]:
    """The installed distributions ``--vendor-deps`` copies: breedclf's serving dependencies
    that a PyTorch container lacks, and everything they require (extras excluded), sorted."""
    wanted = [name for name in CONTAINER_REQUIREMENTS if name not in _CONTAINER_PROVIDES]
    found: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in found or name in _CONTAINER_PROVIDES:
            continue
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            raise CheckpointError(
                f"cannot vendor {name!r}: it is not installed in this environment "
                f"({sys.prefix}); install breedclf with its dependencies first"
            ) from None
        found.add(name)
        for requirement in requires:
            if ";" in requirement and "extra" in requirement.split(";", 1)[1]:
                continue
            match = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
            if match:
                wanted.append(_canonical(match.group(1)))
    return sorted(found)


def _vendored_members() -> list[tuple[str, bytes]]:
    """``code/lib/...``: the installed files of :func:`vendored_distributions`, and
    ``vendor.json`` recording what their compiled parts need."""
    members: list[tuple[str, bytes]] = []
    versions: dict[str, str] = {}
    suffixes: set[str] = set()
    accepted = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
    for name in vendored_distributions():
        dist = importlib.metadata.distribution(name)
        versions[name] = dist.version
        for file in dist.files or []:
            relative = file.as_posix()
            if (
                relative.startswith("..")  # console scripts outside site-packages
                or "__pycache__" in file.parts
                or relative.endswith((".pyc", "/RECORD", "/INSTALLER", "/REQUESTED"))
            ):
                continue
            path = Path(str(dist.locate_file(file)))
            if not path.is_file():
                continue
            if path.suffix in {".so", ".pyd"}:
                suffixes.add(next(s for s in accepted if path.name.endswith(s)))
            members.append((f"code/lib/{relative}", path.read_bytes()))
    record = {
        "python": "{}.{}".format(*sys.version_info[:2]),
        "machine": platform.machine(),
        "extension_suffixes": sorted(suffixes - {".so"}),
        "distributions": versions,
    }
    members.append(("code/lib/vendor.json", json.dumps(record, indent=2).encode("utf-8")))
    return sorted(members)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


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
