"""``breedclf report``: the training report of a run directory, and its profiler rules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["report"]


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (its output_dir).")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Where to write (default RUN_DIR/report.html)."),
    ] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option(
            "--rule",
            help="Evaluate these profiler rules instead of the run's, e.g. "
            "--rule 'StepOutlier(stddev=2)' or "
            "--rule 'ProfilerReport(CPUBottleneck_threshold=60)'.",
        ),
    ] = None,
) -> None:
    """Write report.html for a finished or interrupted run; print the profiler rule statuses."""
    from breedclf.profiler._report import Report
    from breedclf.profiler._rule import parse_profiler_rule

    rules = [parse_profiler_rule(text) for text in rule] if rule else None
    page = Report(run_dir, rules=rules)
    path = page.write(output)
    typer.echo("profiler rules:")
    for summary in page.engine.summaries():
        extra = f" ({summary['triggered']}x: {summary['message']})" if summary["triggered"] else ""
        typer.echo(f"  {summary['rule']}: {summary['status']}{extra}")
    typer.echo(f"wrote {path}")
