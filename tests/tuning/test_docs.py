"""docs/tuning.md's study files and the example study are valid, and their spaces check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from breedclf.config import validate_config
from breedclf.tuning import StudyConfig, check_space, load_study_config, resolve_experiment

ROOT = Path(__file__).resolve().parents[2]
# Study files are fenced ```yml (the ```yaml blocks of docs/ are experiment configs).
FENCE = re.compile(r"^```yml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_docs_study_file_validates_and_its_space_checks() -> None:
    (body,) = FENCE.findall((ROOT / "docs" / "tuning.md").read_text(encoding="utf-8"))
    data = yaml.safe_load(body)
    data["experiment"] = str(ROOT / "examples" / "tuning" / "experiment.yaml")
    config = validate_config(StudyConfig, data, "docs/tuning.md")
    check_space(config, resolve_experiment(config))


@pytest.mark.parametrize("name", ["study.yaml"])
def test_example_study_loads_and_its_space_checks(name: str) -> None:
    config = load_study_config(ROOT / "examples" / "tuning" / name)
    assert config.experiment == ROOT / "examples" / "tuning" / "experiment.yaml"
    check_space(config, resolve_experiment(config))
