"""``report.html``: the training report, one self-contained page (inline SVG plots, no scripts).

It reads only files of the run directory, so it works offline on a finished or a killed run:
``config.yaml``, ``metrics.jsonl``, ``eval-<split>.json``, ``profiler/*`` and ``debugger/*``.
Needs the ``report`` extra (matplotlib and Jinja2).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from breedclf._io import atomic_path
from breedclf.errors import CheckpointError, MissingDependencyError
from breedclf.profiler._data import (
    PROFILER_DIR,
    TOP_OPERATORS_FILE,
    TRACE_FILE,
    ProfilerData,
    TailReader,
    load_profiler_data,
)
from breedclf.profiler._rule import ProfilerRule

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["REPORT_FILE", "Report", "write_report"]

REPORT_FILE = "report.html"
_MAX_POINTS = 1500  # per timeline series: a day-long run stays a light page


def _require_extra() -> None:
    try:
        import jinja2  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            exc.name or "matplotlib", "report", "the training report (report.html)"
        ) from None


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float, height: float, rows: int = 1, cols: int = 1) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return list(TailReader(path).read())


def _fmt_time(stamp: float | None) -> str:
    if stamp is None:
        return "—"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _fmt_value(value: float, unit: str) -> str:
    if unit == "bytes/s":
        return f"{value / 1e6:.2f} MB/s"
    return f"{value:.1f}"


def _thin(points: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    arr = np.array(points, dtype=float).reshape(-1, 2)
    if len(arr) > _MAX_POINTS:
        arr = arr[:: math.ceil(len(arr) / _MAX_POINTS)]
    return arr[:, 0], arr[:, 1]


@dataclass
class _Section:
    key: str
    title: str
    caption: str = ""
    svg: str = ""
    tables: list[dict[str, Any]] = field(default_factory=list)
    missing: str = ""
    pre: str = ""


class Report:
    """The training report of a run directory; renders inline in a notebook.

    Profiler rules are evaluated again on the recorded files (the same windows as live), with
    the rules of the run's ``profiler`` config section, or ``rules`` when given.

    Args:
        run_dir: The run's ``output_dir``.
        rules: Rules to evaluate instead of the run's own.

    Raises:
        CheckpointError: ``run_dir`` holds no run (no metrics log, no profiler files).
        MissingDependencyError: matplotlib or Jinja2 is missing (``pip install
            'breedclf[report]'``).

    Example:
        >>> from breedclf.profiler import Report
        >>> Report("runs/demo")               # doctest: +SKIP
        >>> Report("runs/demo").write()       # doctest: +SKIP
        PosixPath('runs/demo/report.html')
    """

    def __init__(self, run_dir: str | Path, *, rules: list[ProfilerRule] | None = None) -> None:
        _require_extra()
        self.run_dir = Path(run_dir)
        if (
            not (self.run_dir / "metrics.jsonl").is_file()
            and not (self.run_dir / PROFILER_DIR).is_dir()
        ):
            raise CheckpointError(
                f"{self.run_dir} holds no run (no metrics.jsonl and no profiler/ folder): "
                "give the output_dir of a `breedclf train` run"
            )
        self.config = self._config()
        self.data: ProfilerData = load_profiler_data(self.run_dir)
        self.metrics = _read_jsonl(self.run_dir / "metrics.jsonl")
        self.evaluations = {
            p.stem.removeprefix("eval-"): _read_json(p)
            for p in sorted(self.run_dir.glob("eval-*.json"))
        }
        self.engine = self._evaluate_rules(rules)

    # ------------------------------------------------------------------------------- inputs

    def _config(self) -> dict[str, Any]:
        import yaml

        path = self.run_dir / "config.yaml"
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return {}
        return data if isinstance(data, dict) else {}

    def _evaluate_rules(self, rules: list[ProfilerRule] | None) -> Any:
        from breedclf.config import ProfilerConfig, validate_config
        from breedclf.profiler._callback import evaluate_profiler
        from breedclf.profiler._config import create_profiler_rules, resolve_scan_interval

        section = self.config.get("profiler")
        config = validate_config(ProfilerConfig, section) if section else ProfilerConfig()
        chosen = rules if rules is not None else create_profiler_rules(config)
        return evaluate_profiler(self.run_dir, chosen, scan_interval=resolve_scan_interval(config))

    # ------------------------------------------------------------------------------ summary

    def summary(self) -> list[tuple[str, str]]:
        """The run summary as (label, value) rows."""
        fw = self.data.framework
        start_line = fw.starts[0] if fw.starts else {}
        last_start = fw.starts[-1] if fw.starts else {}
        start = start_line.get("process_start") or self.data.start_time
        end = self.data.end_time
        steps = fw.steps
        loop_start = steps[0].start if steps else None
        loop_end = steps[-1].start + steps[-1].duration if steps else None
        total = (end - start) if start is not None and end is not None else None
        init = (loop_start - start) if loop_start is not None and start is not None else None
        final = (end - loop_end) if end is not None and loop_end is not None else None

        def share(part: float | None) -> str:
            if part is None or not total:
                return _fmt_seconds(part)
            return f"{_fmt_seconds(part)} ({100 * part / total:.1f} %)"

        if fw.ends and fw.ends[-1].get("failed"):
            state = f"failed ({fw.ends[-1]['failed']})"
        elif fw.starts and len(fw.ends) < len(fw.starts):
            state = "interrupted (no end recorded: killed, or still running)"
        else:
            state = "finished" if fw.ends else "—"
        data_cfg = self.config.get("data", {})
        model_cfg = self.config.get("model", {})
        epochs = [m for m in self.metrics if m.get("event") == "epoch"]
        best = self._best_epoch(epochs)
        rows = [
            ("run", str(self.config.get("name", self.run_dir.name))),
            ("state", state),
            ("start", _fmt_time(start)),
            ("end", _fmt_time(end)),
            ("duration", _fmt_seconds(total)),
            ("initialization", share(init)),
            ("training loop", share((loop_end - loop_start) if loop_start and loop_end else None)),
            ("finalization", share(final)),
            (
                "device",
                f"{last_start.get('device', '—')}"
                + (f", {last_start['amp']}" if last_start.get("amp") else ""),
            ),
            (
                "model",
                f"{model_cfg.get('name', last_start.get('arch', '—'))} "
                f"(weights {model_cfg.get('weights', '—')}), "
                f"{last_start.get('num_classes', '—')} classes",
            ),
            ("dataset", f"{data_cfg.get('dataset', '—')} at {data_cfg.get('root', '—')}"),
            (
                "batch size / loader workers",
                f"{last_start.get('batch_size', '—')} / {last_start.get('num_workers', '—')}",
            ),
            (
                "epochs",
                f"{len(epochs)} of {last_start.get('epochs', '—')} ({len(steps)} steps recorded)",
            ),
            ("best epoch", str(best) if best is not None else "—"),
        ]
        for split in ("valid", "test"):
            ev = self.evaluations.get(split)
            if isinstance(ev, dict) and "acc" in ev:
                label = "held-out test accuracy" if split == "test" else "validation accuracy"
                rows.append(
                    (
                        label,
                        f"{ev['acc']:.4f} (top-5 {ev.get('top5', float('nan')):.4f},"
                        f" {ev.get('count', '?')} images)",
                    )
                )
        return rows

    def _best_epoch(self, epochs: list[dict[str, Any]]) -> int | None:
        saved = _read_json(self.run_dir / "model" / "breedclf.json")
        if isinstance(saved, dict) and "best_epoch" in saved.get("metrics", {}):
            return int(saved["metrics"]["best_epoch"])
        monitor = self.config.get("training", {}).get("monitor", "valid_acc")
        scored = [
            (e["valid"].get(monitor.removeprefix("valid_")), e["epoch"])
            for e in epochs
            if e.get("valid")
        ]
        scored = [(v, e) for v, e in scored if isinstance(v, int | float) and math.isfinite(v)]
        if not scored:
            return None
        pick = min(scored) if monitor == "valid_loss" else max(scored)
        return int(pick[1])

    # -------------------------------------------------------------------------------- plots

    def _timelines(self) -> _Section:
        section = _Section(
            "timelines",
            "System timelines",
            "CPU (mean over cores, band: min–max core), memory, I/O wait, GPUs, "
            "disk and network, per node; seconds since the run started.",
        )
        if not self.data.system:
            section.missing = "no system samples were recorded"
            return section
        origin = self.data.start_time or 0.0
        gpus = bool(self.data.series("GPUUtilization"))
        rows = 4 if gpus else 3
        fig, axes = _figure(10, 2.1 * rows, rows, 1)
        ax_cpu, ax_mem = axes[0][0], axes[1][0]
        ax_gpu = axes[2][0] if gpus else None
        ax_io = axes[rows - 1][0]
        for node in self.data.nodes:
            by_time: dict[float, list[float]] = {}
            for s in self.data.system:
                if s.node == node and s.dimension == "CPUUtilization":
                    by_time.setdefault(s.timestamp, []).append(s.value)
            if by_time:
                t = np.array(sorted(by_time)) - origin
                vals = [by_time[k] for k in sorted(by_time)]
                ax_cpu.plot(t, [np.mean(v) for v in vals], label=f"{node} mean", lw=1.2)
                ax_cpu.fill_between(t, [min(v) for v in vals], [max(v) for v in vals], alpha=0.2)
        ax_cpu.set_ylabel("CPU %")
        for dim, ax, label in (
            ("MemoryUsedPercent", ax_mem, "memory"),
            ("I/OWaitPercentage", ax_mem, "I/O wait"),
        ):
            for (node, _), pts in self.data.series(dim).items():
                x, y = _thin(pts)
                ax.plot(x - origin, y, label=f"{node} {label}", lw=1.2)
        ax_mem.set_ylabel("%")
        if ax_gpu is not None:
            for dim, style in (("GPUUtilization", "-"), ("GPUMemoryUtilization", "--")):
                for (node, name), pts in self.data.series(dim).items():
                    x, y = _thin(pts)
                    ax_gpu.plot(
                        x - origin,
                        y,
                        style,
                        lw=1.2,
                        label=f"{node}/{name} {'memory' if 'Memory' in dim else 'util'}",
                    )
            ax_gpu.set_ylabel("GPU %")
        for dim in (
            "ReadBytesPerSecond",
            "WriteBytesPerSecond",
            "ReceivedBytesPerSecond",
            "SentBytesPerSecond",
        ):
            for (node, name), pts in self.data.series(dim).items():
                x, y = _thin(pts)
                ax_io.plot(x - origin, y / 1e6, lw=1, label=f"{node} {name} {dim[:-9]}")
        ax_io.set_ylabel("MB/s")
        ax_io.set_xlabel("seconds since start")
        for row in axes:
            row[0].grid(alpha=0.3)
            if row[0].get_legend_handles_labels()[0]:
                row[0].legend(fontsize=7, loc="upper right")
        section.svg = _svg(fig)
        return section

    def _steps(self) -> _Section:
        section = _Section(
            "steps",
            "Step durations",
            "Histogram of training-step durations (data wait to the end of the "
            "step's callbacks); the dashed line is StepOutlier's limit.",
        )
        steps = self.data.framework.steps
        if not steps:
            section.missing = "no training step was recorded"
            return section
        durations = np.array([s.duration for s in steps]) * 1000
        limit = None
        for rule in self.engine.rules:
            if rule.rule_name == "StepOutlier":
                limit = rule.details().get("limit_seconds")
        if limit is None and len(durations) > 1:
            limit = float(durations.mean() + 3 * durations.std()) / 1000
        fig, axes = _figure(10, 3.2, 1, 2)
        ax: Axes = axes[0][0]
        ax.hist(durations, bins=min(60, max(5, len(durations) // 3)), color="#4c72b0")
        if limit is not None:
            ax.axvline(limit * 1000, ls="--", color="#c44e52", label="outlier limit")
            ax.legend(fontsize=8)
        ax.set_xlabel("step duration (ms)")
        ax.set_ylabel("steps")
        ax2: Axes = axes[0][1]
        ax2.plot([s.step for s in steps], durations, lw=0.8, label="step")
        ax2.plot(
            [s.step for s in steps], [s.data_wait * 1000 for s in steps], lw=0.8, label="data wait"
        )
        ax2.set_xlabel("step")
        ax2.set_ylabel("ms")
        ax2.legend(fontsize=8)
        for a in (ax, ax2):
            a.grid(alpha=0.3)
        section.svg = _svg(fig)
        ms = durations
        wait, total = sum(s.data_wait for s in steps), sum(s.duration for s in steps)
        section.tables.append(
            {
                "title": "Step statistics",
                "columns": ["steps", "mean ms", "p50 ms", "p95 ms", "max ms", "data wait %"],
                "rows": [
                    [
                        len(ms),
                        f"{ms.mean():.1f}",
                        f"{np.percentile(ms, 50):.1f}",
                        f"{np.percentile(ms, 95):.1f}",
                        f"{ms.max():.1f}",
                        f"{100 * wait / max(total, 1e-12):.1f}",
                    ]
                ],
            }
        )
        if limit is not None:
            slow = sorted((s for s in steps if s.duration > limit), key=lambda s: -s.duration)
            section.tables.append(
                {
                    "title": f"Outlier steps (> {limit * 1000:.0f} ms), slowest first",
                    "columns": ["step", "epoch", "ms", "data wait ms", "forward ms", "backward ms"],
                    "rows": [
                        [
                            s.step,
                            s.epoch,
                            f"{s.duration * 1000:.1f}",
                            f"{s.data_wait * 1000:.1f}",
                            f"{s.sections.get('forward', 0) * 1000:.1f}",
                            f"{s.sections.get('backward', 0) * 1000:.1f}",
                        ]
                        for s in slow[:20]
                    ],
                    "empty": "none",
                }
            )
        return section

    def _breakdown(self) -> _Section:
        from breedclf.profiler._rules import time_breakdown

        section = _Section(
            "breakdown",
            "Time by section",
            "Where training time went: the trainer's profiler sections, summed "
            "over the run (validation and checkpoints per epoch).",
        )
        totals = time_breakdown(self.data.framework.steps, self.data.framework.sections)
        if not totals:
            section.missing = "no framework metrics were recorded"
            return section
        items = sorted(totals.items(), key=lambda kv: kv[1])
        total = sum(totals.values())
        # The chart keeps sections of at least 1 % and sums the rest (the table lists all).
        small = [(k, v) for k, v in items if v < 0.01 * total]
        bars = [(k, v) for k, v in items if v >= 0.01 * total]
        if len(small) > 1:
            bars.insert(0, (f"{len(small)} others (each < 1 %)", sum(v for _, v in small)))
        else:
            bars = items
        fig, axes = _figure(8, 0.35 * len(bars) + 1.0)
        ax: Axes = axes[0][0]
        ax.barh([k for k, _ in bars], [v for _, v in bars], color="#55a868")
        ax.set_xlabel("seconds")
        ax.grid(alpha=0.3, axis="x")
        section.svg = _svg(fig)
        section.tables.append(
            {
                "title": "Seconds by section",
                "columns": ["section", "seconds", "share %"],
                "rows": [[k, f"{v:.2f}", f"{100 * v / total:.1f}"] for k, v in reversed(items)],
            }
        )
        return section

    def _curves(self) -> _Section:
        section = _Section(
            "curves",
            "Training and validation curves",
            "Per epoch: loss, top-1 accuracy and the learning rate of every parameter group.",
        )
        epochs = [m for m in self.metrics if m.get("event") == "epoch"]
        if not epochs:
            section.missing = "no epoch finished"
            return section
        from matplotlib.ticker import MaxNLocator

        x = [e["epoch"] for e in epochs]
        fig, axes = _figure(11, 3.2, 1, 3)
        for ax, key, title in ((axes[0][0], "loss", "loss"), (axes[0][1], "acc", "accuracy")):
            for split in ("train", "valid"):
                ys = [_num(e.get(split, {}).get(key)) for e in epochs]
                if any(math.isfinite(y) for y in ys):
                    ax.plot(x, ys, marker="o", label=split)
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        ax_lr: Axes = axes[0][2]
        groups = sorted({g for e in epochs for g in e.get("lrs", {})}) or ["lr"]
        for group in groups:
            ys = [_num(e.get("lrs", {}).get(group, e.get("lr"))) for e in epochs]
            ax_lr.plot(x, ys, marker="o", label=group)
        ax_lr.set_title("learning rate (end of epoch)")
        ax_lr.set_xlabel("epoch")
        ax_lr.legend(fontsize=7)
        ax_lr.grid(alpha=0.3)
        for ax in axes[0]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        section.svg = _svg(fig)
        section.tables.append(
            {
                "title": "Epochs",
                "columns": [
                    "epoch",
                    "train loss",
                    "train acc",
                    "valid loss",
                    "valid acc",
                    "lr",
                    "seconds",
                    "images/s",
                ],
                "rows": [
                    [
                        e["epoch"],
                        _f4(e["train"].get("loss")),
                        _f4(e["train"].get("acc")),
                        _f4(e.get("valid", {}).get("loss")),
                        _f4(e.get("valid", {}).get("acc")),
                        f"{_num(e.get('lr')):.3g}",
                        f"{_num(e.get('seconds')):.1f}",
                        f"{_num(e.get('images_per_second')):.1f}",
                    ]
                    for e in epochs
                ],
            }
        )
        return section

    def _classes(self) -> _Section:
        split = "test" if isinstance(self.evaluations.get("test"), dict) else "valid"
        ev = self.evaluations.get(split)
        section = _Section(
            "classes",
            f"Per-class accuracy and confusion ({split} split)",
            "Rows of the matrix are true classes, columns predictions; the "
            "tables list the worst classes and the most confused pairs.",
        )
        if not isinstance(ev, dict) or "confusion" not in ev:
            section.missing = "the run has no evaluation with per-class results (eval-*.json)"
            return section
        matrix = np.array(ev["confusion"], dtype=float)
        n = len(matrix)
        classes = ev.get("classes") or [str(i) for i in range(n)]
        support = matrix.sum(axis=1)
        acc = np.divide(np.diag(matrix), support, out=np.full(n, np.nan), where=support > 0)
        order = np.argsort(np.where(np.isnan(acc), np.inf, acc))
        big = n > 30
        fig, axes = _figure(11, 4.5 if not big else 9.5, 1, 2)
        ax: Axes = axes[0][0]
        shown = order[::-1]
        ax.barh(range(n), np.nan_to_num(acc[shown]), color="#4c72b0")
        ax.set_xlim(0, 1)
        ax.set_xlabel("accuracy")
        if n <= 40:
            ax.set_yticks(range(n), [classes[i] for i in shown], fontsize=7)
        else:
            ax.set_yticks([])
            ax.set_ylabel(f"{n} classes, best at the top")
        ax.set_title("per-class accuracy")
        ax2: Axes = axes[0][1]
        rows = matrix / np.maximum(support[:, None], 1)
        image = ax2.imshow(rows, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        fig.colorbar(image, ax=ax2, shrink=0.8, label="share of the true class")
        if n <= 20:
            ax2.set_xticks(range(n), classes, rotation=60, fontsize=7, ha="right")
            ax2.set_yticks(range(n), classes, fontsize=7)
            for i in range(n):
                for j in range(n):
                    if matrix[i, j]:
                        ax2.text(
                            j,
                            i,
                            str(int(matrix[i, j])),
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if rows[i, j] > 0.5 else "black",
                        )
        else:
            ax2.set_xlabel("predicted class index")
            ax2.set_ylabel("true class index")
        ax2.set_title("confusion matrix (row-normalised)")
        section.svg = _svg(fig)
        worst = [i for i in order if not np.isnan(acc[i])][:15]
        section.tables.append(
            {
                "title": "Worst classes",
                "columns": ["class", "accuracy", "images", "most often predicted as"],
                "rows": [
                    [
                        classes[i],
                        f"{acc[i]:.3f}",
                        int(support[i]),
                        _top_confusion(matrix, i, classes),
                    ]
                    for i in worst
                ],
            }
        )
        off = matrix.copy()
        np.fill_diagonal(off, 0)
        flat = np.argsort(off, axis=None)[::-1][:15]
        pairs = [(int(k // n), int(k % n)) for k in flat if off.flat[k] > 0]
        section.tables.append(
            {
                "title": "Most confused pairs",
                "columns": ["true class", "predicted as", "images", "share of the true class"],
                "rows": [
                    [
                        classes[i],
                        classes[j],
                        int(matrix[i, j]),
                        f"{matrix[i, j] / max(support[i], 1):.1%}",
                    ]
                    for i, j in pairs
                ],
                "empty": "no confusion: every image was classified correctly",
            }
        )
        return section

    def _trace(self) -> _Section | None:
        folder = self.data.directory
        if not (folder / TRACE_FILE).is_file():
            return None
        section = _Section(
            "trace",
            "torch.profiler trace",
            f"The captured steps are in {PROFILER_DIR}/{TRACE_FILE}: open it in "
            "chrome://tracing or ui.perfetto.dev. Top operators by self time:",
        )
        table = folder / TOP_OPERATORS_FILE
        section.pre = table.read_text(encoding="utf-8") if table.is_file() else ""
        return section

    # ------------------------------------------------------------------------- rules, debug

    def _rules(self) -> list[dict[str, Any]]:
        rows = self.engine.summaries()
        rank = {"IssuesFound": 0, "NoIssuesFound": 1, "NotApplicable": 2}
        return sorted(rows, key=lambda r: rank.get(r["status"], 3))

    def _debugger(self) -> dict[str, Any] | None:
        from breedclf.debugger._engine import read_findings, read_statuses

        if not (self.run_dir / "debugger").is_dir():
            return None
        try:
            findings = read_findings(self.run_dir)
            statuses = read_statuses(self.run_dir)
        except ValueError as exc:  # a findings file a crash left unreadable
            return {"rules": [], "findings": [], "more": 0, "error": str(exc)}
        rules = []
        for label in dict.fromkeys([*statuses, *(f.rule for f in findings)]):
            own = [f for f in findings if f.rule == label]
            rules.append({
                "rule": label,
                "status": statuses.get(label, "IssuesFound" if own else "NoIssuesFound"),
                "fired": len(own),
                "first": f"{own[0].mode} step {own[0].step}" if own else "",
                "last": f"{own[-1].mode} step {own[-1].step}" if own else "",
                "message": own[-1].message if own else "",
                "advice": own[-1].advice if own else "",
            })  # fmt: skip
        return {"rules": rules, "findings": [f.to_json() for f in findings[:30]],
                "more": max(0, len(findings) - 30)}  # fmt: skip

    # ------------------------------------------------------------------------------- render

    def render(self) -> str:
        """The whole page (HTML)."""
        import jinja2

        sections = [
            self._timelines(),
            self._steps(),
            self._breakdown(),
            self._curves(),
            self._classes(),
        ]
        trace = self._trace()
        if trace is not None:
            sections.append(trace)
        from breedclf.profiler._rules import sample_means, usage_table

        usage = [
            {
                **row,
                **{k: _fmt_value(row[k], row["unit"]) for k in ("max", "p99", "p95", "p50", "min")},
            }
            for row in usage_table(sample_means(self.data.system))
        ]
        env = jinja2.Environment(autoescape=True)
        return env.from_string(_TEMPLATE).render(
            title=str(self.config.get("name", self.run_dir.name)),
            run_dir=str(self.run_dir),
            written=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            summary=self.summary(),
            rules=self._rules(),
            usage=usage,
            sections=sections,
            debugger=self._debugger(),
        )

    def write(self, path: str | Path | None = None) -> Path:
        """Write the page (default ``<run_dir>/report.html``) atomically; returns its path."""
        target = Path(path) if path is not None else self.run_dir / REPORT_FILE
        page = self.render()
        with atomic_path(target) as tmp:
            tmp.write_text(page, encoding="utf-8")
        return target

    def _repr_html_(self) -> str:
        return self.render()


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _f4(value: Any) -> str:
    v = _num(value)
    return f"{v:.4f}" if math.isfinite(v) else "—"


def _top_confusion(matrix: np.ndarray, i: int, classes: list[str]) -> str:
    row = matrix[i].copy()
    row[i] = 0
    if row.max() <= 0:
        return "—"
    j = int(row.argmax())
    return f"{classes[j]} ({int(row[j])})"


def write_report(run_dir: str | Path, path: str | Path | None = None) -> Path:
    """Write ``report.html`` for a run directory (see :class:`Report`)."""
    return Report(run_dir).write(path)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Training report: {{ title }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; margin: 1.2em 0 .4em; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
.missing { color: #777; font-style: italic; }
table { border-collapse: collapse; font-size: 12px; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; }
.IssuesFound { color: #b00020; font-weight: bold; } .NoIssuesFound { color: #176c1c; }
.NotApplicable { color: #777; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; }
dt { font-weight: bold; } dd { margin: 0; }
pre { font-size: 11px; overflow-x: auto; background: #f8f8f8; padding: .6em; }
nav a { margin-right: 1em; }
</style></head>
<body>
<h1>Training report: {{ title }}</h1>
<p>{{ run_dir }} &middot; written {{ written }}</p>
<nav><a href="#summary">Summary</a><a href="#rules">Profiler rules</a>
<a href="#usage">System usage</a>{% for s in sections %}<a href="#{{ s.key }}">{{ s.title }}</a>
{% endfor %}{% if debugger %}<a href="#debugger">Debugger</a>{% endif %}</nav>

<h2 id="summary">Run summary</h2>
<dl>{% for label, value in summary %}<dt>{{ label }}</dt><dd>{{ value }}</dd>{% endfor %}</dl>

<h2 id="rules">Profiler rules</h2>
<p>SageMaker's profiler rules, evaluated on this run's recorded metrics. "Triggered" counts the
scan windows in which a rule found an issue.</p>
<table id="rules-table"><thead><tr><th>rule</th><th>status</th><th>triggered</th>
<th>data points</th><th>what it checks</th><th>finding</th><th>what to do</th>
<th>parameters</th></tr></thead><tbody>
{% for r in rules %}<tr><td>{{ r.rule }}</td><td class="{{ r.status }}">{{ r.status }}</td>
<td class="num">{{ r.triggered }}</td><td class="num">{{ r.datapoints }}</td>
<td>{{ r.description }}</td><td>{{ r.message }}</td>
<td>{% if r.status != "NotApplicable" %}{{ r.advice }}{% endif %}</td>
<td>{% for k, v in r.params.items() %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}
{% endfor %}</td>
</tr>{% endfor %}</tbody></table>

<h2 id="usage">System usage</h2>
{% if usage %}<table id="usage-table"><thead><tr><th>node</th><th>metric</th><th>unit</th>
<th>max</th><th>p99</th><th>p95</th><th>p50</th><th>min</th></tr></thead><tbody>
{% for u in usage %}<tr><td>{{ u.node }}</td><td>{{ u.metric }}</td><td>{{ u.unit }}</td>
<td class="num">{{ u.max }}</td><td class="num">{{ u.p99 }}</td><td class="num">{{ u.p95 }}</td>
<td class="num">{{ u.p50 }}</td><td class="num">{{ u.min }}</td></tr>{% endfor %}
</tbody></table>{% else %}<p class="missing">no system samples were recorded</p>{% endif %}

{% for s in sections %}
<h2 id="{{ s.key }}">{{ s.title }}</h2>
<p>{{ s.caption }}</p>
{% if s.missing %}<p class="missing">{{ s.missing }}</p>{% endif %}
{% if s.svg %}<figure class="plot" data-plot="{{ s.key }}">{{ s.svg | safe }}</figure>{% endif %}
{% if s.pre %}<pre>{{ s.pre }}</pre>{% endif %}
{% for t in s.tables %}<h3>{{ t.title }}</h3>
{% if t.rows %}<table class="data" data-table="{{ s.key }}"><thead><tr>
{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead><tbody>
{% for row in t.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</tbody></table>{% else %}<p class="missing">{{ t.empty }}</p>{% endif %}
{% endfor %}
{% endfor %}

{% if debugger %}
<h2 id="debugger">Debugger findings</h2>
<p>The debugger's rules as they ran during training (debugger/findings.jsonl).</p>
{% if debugger.error %}<p class="missing">could not read the debugger's files:
{{ debugger.error }}</p>{% endif %}
<table id="debugger-rules"><thead><tr><th>rule</th><th>status</th><th>times fired</th>
<th>first</th><th>last</th><th>last finding</th><th>what to try</th></tr></thead><tbody>
{% for r in debugger.rules %}<tr><td>{{ r.rule }}</td><td class="{{ r.status }}">{{ r.status }}</td>
<td class="num">{{ r.fired }}</td><td>{{ r.first }}</td><td>{{ r.last }}</td>
<td>{{ r.message }}</td><td>{{ r.advice }}</td></tr>{% endfor %}</tbody></table>
{% if debugger.findings %}<h3>Findings in order</h3>
<table id="debugger-findings"><thead><tr><th>rule</th><th>mode</th><th>step</th><th>epoch</th>
<th>tensor</th><th>finding</th></tr></thead><tbody>
{% for f in debugger.findings %}<tr><td>{{ f.rule }}</td><td>{{ f.mode }}</td>
<td class="num">{{ f.step }}</td><td class="num">{{ f.epoch }}</td><td>{{ f.tensor }}</td>
<td>{{ f.message }}</td></tr>{% endfor %}</tbody></table>
{% if debugger.more %}<p>... and {{ debugger.more }} more in debugger/findings.jsonl</p>{% endif %}
{% else %}<p>No debugger rule found an issue.</p>{% endif %}
{% endif %}
</body></html>
"""
