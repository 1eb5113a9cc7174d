"""examples/notebooks/quickstart.ipynb runs top to bottom in a real Jupyter kernel (nbclient), with
its parameters cell made smaller, as a user would run it; its outputs are stripped in the repo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebooks" / "quickstart.ipynb"


def test_outputs_are_stripped() -> None:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.slow
def test_the_quickstart_notebook_runs_in_a_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's own deprecation otherwise
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = 'OUT = "runs/quickstart"\nIMAGE_SIZE = 32\nEPOCHS = 2\nTRIALS = 2\n'
    client = NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError (with the traceback) if any cell fails

    def text(index: int) -> str:
        outputs = notebook.cells[index].outputs
        return "".join(o.get("text", "") for o in outputs if o.output_type == "stream")

    code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    assert "ok=True" in text(code[1])
    trained = text(code[2])
    assert "test acc" in trained
    assert "'vanishing_gradient': 'NoIssuesFound'" in trained  # the debugger, on by default
    html = "".join(
        o["data"].get("text/html", "")
        for o in notebook.cells[code[3]].outputs
        if o.output_type == "execute_result"
    )
    assert "<svg" in html  # the report rendered inline, plots included
    assert "best trial" in text(code[4])
    served = text(code[5])  # labelled predictions from the HTTP endpoint
    assert "'label':" in served and "'probability':" in served
    run = tmp_path / "runs" / "quickstart"
    assert (run / "train" / "report.html").is_file()
    assert (run / "study" / "best" / "config.yaml").is_file()
    assert len(text(code[7]).splitlines()) == 3  # one labelled prediction per class
