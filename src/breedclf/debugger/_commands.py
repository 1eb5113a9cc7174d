"""``breedclf debug``: a run's findings, or rules re-evaluated on its saved trial."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from breedclf.debugger._rule import Finding

__all__ = ["debug"]


def _show(findings: list[Finding], limit: int) -> None:
    for finding in findings[:limit]:
        typer.echo(
            f"  [{finding.rule}] {finding.mode} step {finding.step} (epoch {finding.epoch}): "
            f"{finding.message}"
        )
    if len(findings) > limit:
        typer.echo(f"  ... and {len(findings) - limit} more (see debugger/findings.jsonl)")
    if findings:
        advice = {f.rule: f.advice for f in findings}
        typer.echo("what to try:")
        for rule, text in advice.items():
            typer.echo(f"  {rule}: {text}")


def debug(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (its output_dir).")],
    rule: Annotated[
        list[str] | None,
        typer.Option(
            "--rule",
            help="Re-evaluate a rule on the saved trial, e.g. --rule 'overfit(patience=3)'.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Findings to print.")] = 20,
) -> None:
    """Print a run's debugger findings, or re-check rules on its saved trial."""
    from breedclf.debugger._engine import evaluate_trial, read_findings, read_statuses
    from breedclf.debugger._rule import parse_rule

    if rule:
        rules = [parse_rule(text) for text in rule]
        findings, statuses = evaluate_trial(run_dir, rules)
        typer.echo(f"re-evaluated {len(rules)} rule(s) on the trial of {run_dir}:")
    else:
        findings, statuses = read_findings(run_dir), read_statuses(run_dir)
        typer.echo(f"findings of {run_dir}:")
    if not findings:
        typer.echo("  none")
    _show(findings, limit)
    typer.echo("rule statuses:")
    for label, status in statuses.items():
        typer.echo(f"  {label}: {status}")
