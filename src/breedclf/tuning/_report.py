"""``report.html``: one self-contained page (inline SVG plots, no scripts, opens offline)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from breedclf._io import atomic_path
from breedclf.tuning._config import StudyConfig

__all__ = ["write_report"]

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Study {{ name }}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
.missing { color: #777; font-style: italic; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; }
th { background: #f4f4f4; } td.state { text-align: left; }
tr.COMPLETE td.state { color: #176c1c; } tr.PRUNED td.state { color: #a66a00; }
tr.FAIL td.state { color: #b00020; } tr.best { font-weight: bold; background: #eef7ee; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; }
dt { font-weight: bold; }
</style></head>
<body>
<h1>Study {{ name }}</h1>
<dl>
<dt>objective</dt><dd>{{ objective }} ({{ direction }}, validation split only)</dd>
<dt>trials</dt><dd>{{ counts }}</dd>
<dt>sampler / pruner</dt><dd>{{ sampler }} / {{ pruner }}</dd>
{% if best %}<dt>best</dt><dd>trial {{ best.number }}:
 {{ objective }} = {{ "%.4f"|format(best.value) }} &mdash;
 {% for k, v in best.params.items() %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}
 {% endfor %}</dd>{% endif %}
<dt>written</dt><dd>{{ written }}</dd>
</dl>
{% for plot in plots %}
<h2>{{ plot.title }}</h2>
<p>{{ plot.caption }}</p>
{% if plot.svg %}<figure class="plot" data-plot="{{ plot.key }}">{{ plot.svg | safe }}</figure>
{% else %}<p class="missing">{{ plot.missing }}</p>{% endif %}
{% endfor %}
<h2>Trials</h2>
<table id="trials"><thead><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in rows %}<tr class="{{ row.state }}{% if row.best %} best{% endif %}">
{% for cell in row.cells %}<td{% if loop.index == 2 %} class="state"{% endif %}>{{ cell }}</td>
{% endfor %}
</tr>{% endfor %}</tbody></table>
</body></html>
"""


def _svg(draw: Callable[[], Any]) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        draw()
    figure = plt.gcf()  # optuna's plot functions draw on a new current figure
    figure.set_size_inches(9, 4.5)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close("all")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def write_report(study: optuna.Study, config: StudyConfig, path: str | Path) -> Path:
    """Write the study report: history, per-epoch values, importances, parallel coordinates,
    and the trials table.

    Plots that the study cannot have yet (importances need two complete trials with varied
    parameters) say why instead.
    """
    import jinja2
    from optuna.visualization import matplotlib as vis

    from breedclf.tuning._study import _summaries

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    summaries = _summaries(study)
    best = None
    try:
        best_trial = study.best_trial
        best = {
            "number": best_trial.number,
            "value": best_trial.value,
            "params": best_trial.user_attrs.get("values", best_trial.params),
        }
    except ValueError:
        pass
    target = config.objective
    specs: list[tuple[str, str, str, Callable[[], Any], bool]] = [
        (
            "history",
            "Optimization history",
            f"{target} of every complete trial and the best so far.",
            lambda: vis.plot_optimization_history(study, target_name=target),
            len(complete) >= 1,
        ),
        (
            "intermediate",
            "Validation per epoch",
            "Each trial's reported value per epoch; pruned trials stop early.",
            lambda: vis.plot_intermediate_values(study).set_xlabel("Epoch"),
            any(t.intermediate_values for t in trials),
        ),
        (
            "importances",
            "Parameter importances",
            "How much of the objective's variation each parameter explains (fANOVA).",
            lambda: vis.plot_param_importances(study, target_name=target),
            len(complete) >= 2,
        ),
        (
            "parallel",
            "Parallel coordinates",
            "Each line is a complete trial, coloured by its objective.",
            lambda: vis.plot_parallel_coordinate(study, target_name=target),
            len(complete) >= 1,
        ),
    ]
    plots = []
    for key, title, caption, draw, possible in specs:
        svg, missing = "", "not enough complete trials yet"
        if possible:
            try:
                svg = _svg(draw)
            except Exception as exc:  # e.g. importances of a parameter that never varied
                missing = f"not available for this study: {exc}"
        plots.append(
            {"key": key, "title": title, "caption": caption, "svg": svg, "missing": missing}
        )
    paths = list(config.parameters)
    columns = ["trial", "state", target, *paths, "epochs", "seconds", "cached", "failure"]
    rows = []
    for s in summaries:
        cells = [
            s.number,
            s.state,
            "" if s.value is None else f"{s.value:.4f}",
            *(_fmt(s.params[p]) if p in s.params else "" for p in paths),
            "" if s.epochs is None else s.epochs,
            "" if s.seconds is None else f"{s.seconds:.1f}",
            "yes" if s.cached else "",
            s.failure_reason or "",
        ]
        rows.append({"state": s.state, "best": best and s.number == best["number"], "cells": cells})
    counts = {state.name: 0 for state in TrialState}
    for t in trials:
        counts[t.state.name] += 1
    env = jinja2.Environment(autoescape=True)
    page = env.from_string(_TEMPLATE).render(
        name=config.study_name,
        objective=target,
        direction=config.direction,
        counts=", ".join(f"{n.lower()} {c}" for n, c in counts.items() if c),
        sampler=config.sampler,
        pruner=config.pruner.name,
        best=best,
        written=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        plots=plots,
        columns=columns,
        rows=rows,
    )
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(path)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value) if value is not None else "null"
