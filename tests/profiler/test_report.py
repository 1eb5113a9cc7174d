"""report.html of real runs, opened in headless Chromium; ``breedclf report``; the trace."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from breedclf.cli import app
from breedclf.experiment import RunResult
from breedclf.profiler import Report
from tests.browser import launch_chromium, requires_chromium

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


def open_report(browser: Browser, path: Path, shot: Path) -> tuple[Page, list[str]]:
    """Open a report from disk, as a user double-clicking it would; screenshot it whole."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.resolve().as_uri())
    page.screenshot(path=str(shot), full_page=True)
    # Self-contained: the page asked for nothing but itself (no CDN, no image files).
    assert [url for url in requests if not url.startswith("file:")] == []
    assert len(requests) == 1
    return page, errors


def visible_plots(page: Page) -> dict[str, tuple[float, float]]:
    """Each inline plot's rendered size, by section."""
    sizes = {}
    for figure in page.locator("figure.plot").all():
        box = figure.locator("svg").bounding_box()
        assert box is not None
        sizes[str(figure.get_attribute("data-plot"))] = (box["width"], box["height"])
    return sizes


@requires_chromium
def test_report_of_a_three_class_run_shows_every_section(
    browser: Browser, three_class_run: tuple[Path, RunResult], tmp_path: Path
) -> None:
    out, result = three_class_run
    page, errors = open_report(browser, out / "report.html", tmp_path / "report.png")
    assert errors == []
    plots = visible_plots(page)
    assert set(plots) == {"timelines", "steps", "breakdown", "curves", "classes"}
    assert all(w > 300 and h > 150 for w, h in plots.values()), plots
    assert (tmp_path / "report.png").stat().st_size > 50_000
    summary = page.inner_text("dl")
    assert "finished" in summary
    assert "3 classes" in summary
    assert f"best epoch\n{result.best_epoch}\n" in summary
    assert "held-out test accuracy" in summary
    # Rules: every AWS rule is listed; without a GPU the GPU rules are not applicable.
    rules = dict(
        zip(
            page.locator("#rules-table td:nth-child(1)").all_inner_texts(),
            page.locator("#rules-table td:nth-child(2)").all_inner_texts(),
            strict=True,
        )
    )
    assert rules["LowGPUUtilization"] == "NotApplicable"
    assert rules["CPUBottleneck"] == "NotApplicable"
    assert rules["StepOutlier"] in ("IssuesFound", "NoIssuesFound")
    assert len(rules) == 12
    metrics = page.locator("#usage-table td:nth-child(2)").all_inner_texts()
    assert {"CPUUtilization", "MemoryUsedPercent", "I/OWaitPercentage"} <= set(metrics)
    # The debugger ran: its statuses are shown.
    statuses = page.locator("#debugger-rules td:nth-child(1)").all_inner_texts()
    assert statuses == list(result.rule_statuses)
    assert page.is_visible("#trace pre") or "aten::" in page.inner_text("body")


@requires_chromium
def test_report_of_a_133_class_run_is_readable(
    browser: Browser, many_class_run: Path, tmp_path: Path
) -> None:
    page, errors = open_report(browser, many_class_run / "report.html", tmp_path / "report.png")
    assert errors == []
    plots = visible_plots(page)
    assert plots["classes"][1] > 400  # the 133×133 matrix gets room
    tables = page.locator("table[data-table=classes]").all()
    worst, pairs = tables
    assert worst.locator("tbody tr").count() == 15
    assert 0 < pairs.locator("tbody tr").count() <= 15
    first = worst.locator("tbody tr").first.locator("td").all_inner_texts()
    assert re.fullmatch(r"class_\d{3}", first[0])
    assert "133 classes" in page.inner_text("dl")


def test_breedclf_report_regenerates_it_and_prints_the_rules(
    three_class_run: tuple[Path, RunResult], tmp_path: Path
) -> None:
    out, _ = three_class_run
    target = tmp_path / "again.html"
    result = CliRunner().invoke(app, ["report", str(out), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "LowGPUUtilization: NotApplicable" in result.output
    page = target.read_text(encoding="utf-8")
    assert page.count("<svg") >= 5
    assert "<script" not in page
    assert re.search(r'(src|href)="(https?:)?//', page) is None  # nothing to fetch
    # Offline re-evaluation finds what the rules found during training.
    live = json.loads((out / "profiler" / "statuses.json").read_text())
    assert Report(out).engine.statuses == live
    # Other rules on the same recorded data.
    strict = CliRunner().invoke(
        app,
        ["report", str(out), "-o", str(target), "--rule",
         "StepOutlier(stddev=0.0, n_outliers=0, min_steps=2)"],
    )  # fmt: skip
    assert strict.exit_code == 0, strict.output
    assert "StepOutlier: IssuesFound" in strict.output
    bad = CliRunner().invoke(app, ["report", str(out), "--rule", "StepOutlier(stdev=2)"])
    assert bad.exit_code != 0
    assert "did you mean 'stddev'" in str(bad.exception)


def test_report_renders_in_a_notebook(three_class_run: tuple[Path, RunResult]) -> None:
    html = Report(three_class_run[0])._repr_html_()
    assert html.startswith("<!doctype html>")
    assert 'data-plot="curves"' in html


def test_the_trace_window_writes_a_chrome_trace(three_class_run: tuple[Path, RunResult]) -> None:
    folder = three_class_run[0] / "profiler"
    trace = json.loads((folder / "trace.json").read_text(encoding="utf-8"))
    events = trace["traceEvents"]
    assert len(events) > 100
    names = {e.get("name", "") for e in events}
    assert any(name.startswith("aten::conv") for name in names)
    assert "aten::" in (folder / "top_operators.txt").read_text(encoding="utf-8")
