"""The training job's source bundle and metric definitions (no AWS SDK needed here)."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from breedclf.config import ExperimentConfig, dump_config
from breedclf.serving._package import source_members, write_archive
from breedclf.training import METRIC_LINE_REGEX

__all__ = [
    "ENTRY_SCRIPT",
    "ENTRY_SCRIPT_NAME",
    "METRIC_NAMES",
    "METRIC_SPLITS",
    "metric_definitions",
    "training_requirements",
    "write_source_bundle",
]

ENTRY_SCRIPT_NAME = "breedclf_train.py"

#: The bundle's script: the toolkit runs it as ``python breedclf_train.py --name value ...``.
ENTRY_SCRIPT = '''\
"""SageMaker training entry script, written by `breedclf aws train` / `breedclf aws tune`.

breedclf is shipped beside this file; config.yaml is the experiment, hyperparameters override it.
"""

import sys
from pathlib import Path

from breedclf.aws.entry import main

sys.exit(main(default_config=Path(__file__).resolve().parent / "config.yaml"))
'''

#: Splits and metrics the job reports; the test split is never a job metric (nor an objective).
METRIC_SPLITS = ("train", "valid")
METRIC_NAMES = ("loss", "acc", "top5")

# The PyTorch training container has these: reinstalling torch would replace its CUDA build.
_CONTAINER_PROVIDES = {"torch", "torchvision"}


def metric_definitions() -> list[dict[str, str]]:
    """SageMaker ``MetricDefinitions`` built from :data:`~breedclf.training.METRIC_LINE_REGEX`.

    Names read ``valid:acc``; the regexes match plain, exponent and ``nan``/``inf`` numbers.
    The tuner takes the last match of the objective's regex: the last ``split=valid`` line of a
    job is the evaluation of the selected model.

    Example:
        >>> defs = {d["Name"]: d["Regex"] for d in metric_definitions()}
        >>> import re
        >>> re.search(defs["valid:acc"], "epoch=2 split=valid loss=nan acc=8.1e-01").group(1)
        '8.1e-01'
    """
    return [
        {"Name": f"{split}:{metric}", "Regex": METRIC_LINE_REGEX.format(split=split, metric=metric)}
        for split in METRIC_SPLITS
        for metric in METRIC_NAMES
    ]


def training_requirements() -> str:
    """``requirements.txt`` of the bundle: breedclf's own dependencies except torch/torchvision."""
    try:
        declared = importlib.metadata.requires("breedclf") or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    lines = ["# Installed by the SageMaker training toolkit before the job starts."]
    for requirement in declared:
        if ";" in requirement:  # extras
            continue
        match = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
        if match and match.group(1).lower() not in _CONTAINER_PROVIDES:
            lines.append(requirement.strip())
    return "\n".join(lines) + "\n"


def write_source_bundle(experiment: ExperimentConfig, output: str | Path) -> Path:
    """Write ``sourcedir.tar.gz``: breedclf's source, ``config.yaml``, the script, requirements.

    The archive is reproducible (same bytes for the same experiment and breedclf).
    """
    members: list[tuple[str, bytes]] = [
        (ENTRY_SCRIPT_NAME, ENTRY_SCRIPT.encode("utf-8")),
        ("config.yaml", dump_config(experiment).encode("utf-8")),
        ("requirements.txt", training_requirements().encode("utf-8")),
    ]
    members.extend(source_members("breedclf"))
    return write_archive(members, output)
