"""``breedclf tune STUDY.yaml`` and ``breedclf tune show STUDY_DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer._click import Context  # typer vendors click; its Group API takes this Context
from typer.core import TyperGroup

from breedclf._cliutil import parse_overrides

__all__ = ["tune_app"]


class _RunByDefault(TyperGroup):
    """``breedclf tune study.yaml`` means ``breedclf tune run study.yaml``."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


tune_app = typer.Typer(
    cls=_RunByDefault,
    help="Tune hyperparameters: breedclf tune STUDY.yaml, breedclf tune show STUDY_DIR.",
    no_args_is_help=True,
)


@tune_app.command("run")
def run_study(
    study: Annotated[Path, typer.Argument(help="Study YAML file.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a study value: --set trials=4 --set parallel=2"),
    ] = None,
    parallel: Annotated[
        int | None, typer.Option(min=1, help="Trials at once on this machine.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Database URL shared by workers on several machines (postgresql://)."),
    ] = None,
    evaluate_test: Annotated[
        bool,
        typer.Option("--evaluate-test", help="Evaluate the best model on the test split, once."),
    ] = False,
    progress: Annotated[bool | None, typer.Option(help="Progress bar (default: on a TTY).")] = None,
) -> None:
    """Run a study, or continue it: finished trials are kept, interrupted ones re-run."""
    from breedclf.cli import _setup_logging
    from breedclf.tuning._study import Study

    _setup_logging()
    updates = parse_overrides(set_ or [])
    if parallel is not None:
        updates["parallel"] = parallel
    if storage is not None:
        updates["storage"] = storage
    runner = Study.from_yaml(study, updates, progress=progress, evaluate_test=evaluate_test)
    best = runner.optimize()
    typer.echo(
        f"best trial {best.number}: {runner.config.objective} = {best.value:.4f}  "
        + ", ".join(f"{k}={v}" for k, v in best.params.items())
    )
    if best.test is not None:
        typer.echo(f"test accuracy of the best model: {best.test['acc']:.4f}")
    typer.echo(f"best config: {best.config_path}")
    if best.model_dir is not None:
        typer.echo(f"best model:  {best.model_dir}")
    typer.echo(f"report:      {runner.study_dir / 'report.html'}")


@tune_app.command("show")
def show_study(
    study_dir: Annotated[Path, typer.Argument(help="A study's study_dir.")],
) -> None:
    """Print a study's trials table and its best trial."""
    import json

    from breedclf.tuning._study import read_trials

    rows = read_trials(study_dir)
    if not rows:
        typer.echo("no trials yet")
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    widths = {c: min(w, 40) for c, w in widths.items()}
    typer.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        typer.echo("  ".join(row[c][: widths[c]].ljust(widths[c]) for c in columns))
    states = [r["state"] for r in rows]
    typer.echo(
        f"{len(rows)} trials: "
        + ", ".join(f"{s.lower()} {states.count(s)}" for s in dict.fromkeys(states))
    )
    best_file = Path(study_dir) / "best" / "trial.json"
    if best_file.is_file():
        best = json.loads(best_file.read_text(encoding="utf-8"))
        params = ", ".join(f"{k}={v}" for k, v in best["params"].items())
        typer.echo(f"best trial {best['number']}: {best['value']:.4f}  {params}")
        typer.echo(f"best config: {Path(study_dir) / 'best' / 'config.yaml'}")
