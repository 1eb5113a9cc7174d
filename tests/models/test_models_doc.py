"""docs/models.md: its python blocks run, and its architectures table matches the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from breedclf.models import get_default_dropout, list_models, list_weights

PAGE = Path(__file__).resolve().parents[2] / "docs" / "models.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
STAGES = {"resnet": 5, "efficientnet": 9}


def _python_blocks() -> list[str]:
    return [
        body for lang, body in FENCE.findall(PAGE.read_text(encoding="utf-8")) if lang == "python"
    ]


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_python_block_runs(index: int, tmp_path: Path) -> None:
    body = _python_blocks()[index]
    exec(compile(body, f"models.md[python {index}]", "exec"), {"tmp": str(tmp_path)})


def _expected_row(name: str) -> list[str]:
    (info,) = [w for w in list_weights(name) if w.is_default]
    top1 = "not published" if info.imagenet_top1 is None else f"{info.imagenet_top1:.2f} %"
    if info.url is None:
        where = "in a pip package (offline)"
    else:
        where = f"downloaded, {info.file_size_mib:.1f} MiB"
    return [
        f"`{name}`",
        str(STAGES[name.split("_")[0].rstrip("0123456789")]),
        str(get_default_dropout(name)),
        f"`{info.name}`",
        top1,
        f"{info.num_params / 1e6:.1f} M",
        where,
    ]


def test_architectures_table_matches_the_api() -> None:
    text = PAGE.read_text(encoding="utf-8")
    rows = {
        cells[0]: cells
        for line in text.splitlines()
        if line.startswith("| `") and line.count("|") == 8
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert set(rows) == {f"`{name}`" for name in list_models()}
    for name in list_models():
        assert rows[f"`{name}`"] == _expected_row(name), name
