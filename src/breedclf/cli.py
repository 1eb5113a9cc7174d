"""The ``breedclf`` command line."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from breedclf._cliutil import parse_overrides as _parse_overrides
from breedclf.errors import BreedclfError

app = typer.Typer(
    name="breedclf",
    help="Fine-tune, evaluate, serve and package pretrained image classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _setup_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("breedclf")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    # Unreadable images are already logged by the trainer; don't print them twice.
    from breedclf.data import SkippedImageWarning

    warnings.simplefilter("ignore", SkippedImageWarning)


def _import_modules(modules: list[str] | None) -> None:
    """Import user modules that register datasets, models or callbacks."""
    import importlib

    for name in modules or []:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise typer.BadParameter(f"--import {name}: {exc}") from None


ImportOption = Annotated[
    list[str] | None,
    typer.Option(
        "--import",
        help="Import a module first (one that registers your datasets, models or callbacks).",
    ),
]


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the run's last checkpoint.")
    ] = False,
    auto_resume: Annotated[
        bool,
        typer.Option(
            "--auto-resume",
            help="Continue if a checkpoint exists, else start (for restartable containers).",
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace a previous run in the output directory."),
    ] = False,
    allow_config_change: Annotated[
        bool,
        typer.Option(
            "--allow-config-change",
            help="With --resume: accept deliberate config changes (e.g. more epochs).",
        ),
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config value: --set optimizer.lr=3e-4"),
    ] = None,
    imports: ImportOption = None,
    progress: Annotated[
        bool | None, typer.Option(help="Progress bars (default: on a TTY).")
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            "--nproc",
            min=1,
            help="Train data-parallel on N processes of this machine (starts torchrun; "
            "one per GPU). Multi-node: run torchrun yourself (docs/distributed.md).",
        ),
    ] = None,
) -> None:
    """Train an experiment, select the best epoch on validation, and save the model.

    A directory that already holds a run is never overwritten silently: continue it with
    --resume, or replace it with --overwrite.
    """
    from breedclf.config import load_config, override
    from breedclf.experiment import Experiment, run

    if resume and auto_resume:
        raise typer.BadParameter("give --resume or --auto-resume, not both")
    if overwrite and (resume or auto_resume):
        raise typer.BadParameter("--overwrite starts over; it cannot be combined with resuming")
    _setup_logging()
    _import_modules(imports)
    cfg = load_config(config)
    if set_:
        cfg = override(cfg, _parse_overrides(set_), source=f"{config} (with --set overrides)")
    if nproc is not None:  # the config is valid: hand the command to torchrun
        from breedclf.training._launch import exec_torchrun

        if cfg.training.distributed == "off":
            raise typer.BadParameter(
                "--nproc needs training.distributed: auto (with 'off' every process would "
                "train the same model alone)"
            )
        exec_torchrun(nproc, sys.argv[1:])
    from breedclf.training._distributed import init_distributed, shutdown_distributed

    main_rank = init_distributed(cfg.training.distributed, cfg.training.device).is_main
    if not main_rank:
        logging.getLogger("breedclf").setLevel(logging.WARNING)  # rank 0 reports for all
    result = run(
        Experiment(cfg, progress=progress),
        resume="auto" if auto_resume else resume,
        overwrite=overwrite,
        allow_config_change=allow_config_change,
    )
    shutdown_distributed()
    if not main_rank:
        return
    typer.echo(f"best epoch: {result.best_epoch}")
    typer.echo(f"valid accuracy: {result.valid.get('acc', float('nan')):.4f}")
    if result.test is not None:
        typer.echo(f"test accuracy: {result.test['acc']:.4f}")
    typer.echo(f"model saved to: {result.model_dir}")
    if result.rule_statuses:
        typer.echo("debugger rules:")
        for label, status in result.rule_statuses.items():
            typer.echo(f"  {label}: {status}")


@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A saved model directory.")],
    split: Annotated[str, typer.Option(help="train, valid or test.")] = "test",
    imports: ImportOption = None,
) -> None:
    """Evaluate a saved model on a split of the dataset it was trained on (its splits.json)."""
    from breedclf.experiment import Experiment

    _setup_logging()
    _import_modules(imports)
    experiment = Experiment.from_saved(model_dir, progress=False)
    metrics = experiment.evaluate(split)
    typer.echo(
        f"{split}: accuracy {metrics['acc']:.4f}  top-5 {metrics['top5']:.4f}  "
        f"loss {metrics['loss']:.4f}  ({metrics['count']} images)"
    )
    per_class = [
        (acc, name)
        for acc, name in zip(metrics["per_class_acc"], metrics["classes"], strict=True)
        if acc is not None
    ]
    worst = sorted(per_class)[:5]
    typer.echo("lowest per-class accuracy: " + ", ".join(f"{n} {a:.2f}" for a, n in worst))
    typer.echo(f"full report: {experiment.output_dir / f'eval-{split}.json'}")


@app.command()
def predict(
    paths: Annotated[
        list[Path],
        typer.Argument(help="MODEL_DIR followed by images; with --endpoint, images only."),
    ],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Classes per image.")] = 5,
    endpoint: Annotated[
        str | None, typer.Option(help="Query a running server instead of a local model.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Print labelled top-k predictions for images, from a saved model or an endpoint.

    Every image is tried: one that cannot be read or that the server refuses is named with the
    reason (on stderr; with --json also as a JSON line), and the exit code is then 1.
    """
    # Only the names this command catches: with --endpoint, torch is never imported.
    from breedclf.errors import ImageDecodeError
    from breedclf.serving import EndpointRequestError, EndpointServerError

    if endpoint is not None:
        from breedclf.serving import Predictor

        images = list(paths)
        client = Predictor(endpoint)

        def classify(image: Path) -> list[Any]:
            return client.predict(image, top_k=top_k)
    else:
        if len(paths) < 2:
            raise typer.BadParameter("give MODEL_DIR and at least one image (or --endpoint URL)")
        from breedclf.saved_model import load_model

        model = load_model(paths[0], device="auto")
        images = list(paths[1:])

        def classify(image: Path) -> list[Any]:
            return model.predict(image, top_k=top_k)

    def report_failure(image: Path, reason: str, status: int | None) -> None:
        # On stderr; with --json also on stdout, so a consumer gets one line per image.
        where = f" (HTTP {status})" if status is not None else ""
        typer.echo(f"error: {image}{where}: {reason}", err=True)
        if as_json:
            typer.echo(json.dumps({"image": str(image), "error": reason, "status": status}))

    failed = 0
    for image in images:
        try:
            preds = classify(image)
        except (EndpointRequestError, EndpointServerError) as exc:
            failed += 1
            report_failure(image, exc.reason, exc.status_code)
            continue
        except (ImageDecodeError, FileNotFoundError) as exc:
            failed += 1
            report_failure(image, str(exc), None)
            continue
        if as_json:
            typer.echo(json.dumps({"image": str(image), "predictions": preds}))
        else:
            typer.echo(f"{image}:")
            for p in preds:
                typer.echo(f"  {p['probability']:6.1%}  {p['label']}  (index {p['index']})")
    if failed:
        typer.echo(f"error: {failed} of {len(images)} images could not be classified", err=True)
        raise typer.Exit(1)


@data_app.command("check")
def data_check(
    path: Annotated[Path, typer.Argument(help="Dataset folder to scan.")],
) -> None:
    """Decode every image under PATH; list corrupt or truncated files (exit 1 if any).

    PATH is walked by the rules training uses: hidden and ``__`` names (``__MACOSX``) skipped,
    folder links followed, links looping back to a parent folder reported and not entered.
    """
    from breedclf.data import check_images

    report = check_images(path)
    typer.echo(f"checked {report.checked} images under {report.root}")
    if report.hidden_skipped:
        typer.echo(f"skipped {len(report.hidden_skipped)} hidden files/folders, e.g.:")
        for p in report.hidden_skipped[:5]:
            typer.echo(f"  {p}")
    if report.other_files:
        typer.echo(f"ignored {len(report.other_files)} non-image files")
    if report.symlink_loops:
        typer.echo(f"did not enter {len(report.symlink_loops)} links back to a parent folder:")
        for p in report.symlink_loops[:5]:
            typer.echo(f"  {p}")
    if report.bad:
        typer.echo(f"{len(report.bad)} unreadable images (training skips them):")
        for p, reason in report.bad:
            typer.echo(f"  {p}: {reason}")
        raise typer.Exit(1)
    typer.echo("all images decode")


@app.command("models")
def models_(
    pattern: Annotated[str, typer.Argument(help="Wildcard filter, e.g. 'resnet*'.")] = "*",
    weights: Annotated[
        bool, typer.Option("--weights", help="Also list each model's pretrained weights.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the weights of the models as JSON.")
    ] = False,
) -> None:
    """List the registered model architectures (and their pretrained weights, offline)."""
    from breedclf.models import get_default_dropout, list_models, list_weights

    names = list_models(pattern)
    if as_json:
        infos = [info.model_dump(mode="json") for name in names for info in list_weights(name)]
        typer.echo(json.dumps(infos, indent=2))
        return
    for name in names:
        if not weights:
            typer.echo(name)
            continue
        typer.echo(f"{name} (default dropout {get_default_dropout(name)})")
        for info in list_weights(name):
            facts = [
                f"top-{k} {acc:.2f}%"
                for k, acc in ((1, info.imagenet_top1), (5, info.imagenet_top5))
                if acc is not None
            ] or ["no published ImageNet accuracy"]
            facts.append(f"{info.num_params / 1e6:.1f} M params, {info.num_classes} classes")
            spec = info.preprocess
            stats = ", ".join(
                f"{label} ({', '.join(f'{v:.3f}' for v in values)})"
                for label, values in (("mean", spec.mean), ("std", spec.std))
            )
            size = f"{info.file_size_mib:.1f} MiB" if info.file_size_mib is not None else "file"
            if info.available_offline:
                where = f"{size} at {info.local_path} (offline)"
            else:
                where = (
                    f"{size} from {info.url} (download on first use, or copy it to "
                    f"{info.local_path})"
                )
            typer.echo(f"  {' = '.join((info.name, *info.aliases))}: {', '.join(facts)}")
            typer.echo(
                f"    resize {spec.resize_size} → crop {spec.input_size} {spec.interpolation}, "
                f"{stats}"
            )
            typer.echo(f"    {where}")


@app.command("config")
def config_(
    output: Annotated[Path | None, typer.Option("-o", help="Write to a file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Print (or write) a complete default experiment config to start from."""
    from breedclf.config import ExperimentConfig, dump_config

    if output is not None and output.exists() and not force:
        typer.echo(
            f"error: {output} exists; pass --force to replace it, or choose another file",
            err=True,
        )
        raise typer.Exit(2)
    text = dump_config(ExperimentConfig(), output)
    if output is None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"wrote {output}")


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Run directory.")] = Path(
        "runs/demo"
    ),
    epochs: Annotated[int, typer.Option(min=1)] = 4,
    progress: Annotated[
        bool | None, typer.Option(help="Progress bars (default: on a TTY).")
    ] = None,
    compare: Annotated[
        bool, typer.Option(help="Also train the same recipe from random weights, for contrast.")
    ] = True,
) -> None:
    """Fine-tune pretrained EfficientNet-Lite0 on real photographs (offline) and show results."""
    from breedclf.demo import run_demo

    _setup_logging()
    typer.echo(
        "breedclf demo: fine-tuning EfficientNet-Lite0 (ImageNet weights, offline) on "
        "scikit-image's brick/grass/gravel photographs, 96 px, CPU/GPU auto"
    )
    result = run_demo(output, epochs=epochs, progress=progress, compare_random_init=compare)
    run = result.run
    typer.echo("")
    typer.echo(
        f"trained {len(run.history)} epochs in {result.seconds:.0f} s; best epoch {run.best_epoch}"
    )
    typer.echo(f"validation accuracy: {run.valid['acc']:.3f} ({run.valid['count']} images)")
    if run.test is not None:
        typer.echo(
            f"held-out test accuracy: {run.test['acc']:.3f} ({run.test['count']} images, "
            "never used for training or model selection)"
        )
    if result.random_init is not None and result.random_init.test is not None:
        typer.echo(
            f"same recipe from random weights: test accuracy {result.random_init.test['acc']:.3f}"
            " (what the ImageNet weights are worth here)"
        )
    typer.echo("\npredictions of the saved model on held-out test images:")
    for path, truth, preds in result.samples:
        top = preds[0]
        mark = "ok " if top["label"] == truth else "MISS"
        others = ", ".join(f"{p['label']} {p['probability']:.2f}" for p in preds[1:])
        typer.echo(
            f"  [{mark}] {path.name:28s} true={truth:7s} predicted={top['label']} "
            f"{top['probability']:.2f}  (then {others})"
        )
    out = Path(output)
    typer.echo("\nwritten:")
    typer.echo(f"  dataset (ImageFolder): {out / 'data'}")
    typer.echo(f"  saved model:           {run.model_dir}")
    typer.echo(f"  metrics log:           {out / 'metrics.jsonl'}")
    typer.echo(f"  test report:           {out / 'eval-test.json'}")
    if (out / "report.html").is_file():
        typer.echo(f"  training report:       {out / 'report.html'}")
    typer.echo(f"  checkpoints:           {out / 'checkpoints'}")
    if result.random_init is not None:
        typer.echo(f"  random-init contrast:  {out / 'random-init'}")
    typer.echo(f"\ntry: breedclf predict {run.model_dir} {result.samples[0][0]}")


def _register_serving_commands() -> None:
    from breedclf.serving._commands import package, serve

    app.command(help="Serve a saved model over HTTP (SageMaker /ping + /invocations, web page).")(
        serve
    )
    app.command(help="Package a saved model as model.tar.gz for SageMaker's PyTorch container.")(
        package
    )


_register_serving_commands()


def _register_debug_command() -> None:
    from breedclf.debugger._commands import debug

    app.command(help="Print a run's debugger findings, or re-check rules on its saved trial.")(
        debug
    )


_register_debug_command()


def _register_report_command() -> None:
    from breedclf.profiler._commands import report

    app.command(help="Write a run's training report (report.html) and print its profiler rules.")(
        report
    )


_register_report_command()


def _register_tuning_commands() -> None:
    try:
        from breedclf.tuning._commands import tune_app
    except ImportError:  # without the tune extra, `breedclf tune` explains what to install
        tune_app = typer.Typer(help="Tune hyperparameters (needs: pip install 'breedclf[tune]').")

        @tune_app.callback(invoke_without_command=True)
        def _missing() -> None:
            typer.echo("error: tuning needs optuna: pip install 'breedclf[tune]'", err=True)
            raise typer.Exit(2)

    app.add_typer(tune_app, name="tune")


_register_tuning_commands()


def _register_aws_commands() -> None:
    from breedclf.aws._commands import aws_app

    app.add_typer(aws_app, name="aws")


_register_aws_commands()


def main() -> None:
    """Entry point: run the app; library errors become one clear line and exit code 2."""
    try:
        app()
    except BreedclfError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
