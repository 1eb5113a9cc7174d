"""The debugger in a whole run: stop_training ends the run at the step, statuses are reported,
``breedclf debug`` re-checks rules on the saved trial."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from typer.testing import CliRunner

from breedclf.cli import app
from breedclf.config import ExperimentConfig, override, validate_config
from breedclf.debugger import evaluate_trial, load_trial, parse_rule, read_findings
from breedclf.experiment import Experiment, run
from breedclf.training import read_checkpoint_metadata


def broken(root: Path, out: Path) -> ExperimentConfig:
    """The documented broken recipe: learning rate 50, rules stop the run."""
    config = validate_config(
        ExperimentConfig,
        {
            "name": "broken",
            "output_dir": str(out),
            "data": {"dataset": "textures", "root": str(root), "image_size": 32},
            "model": {"name": "efficientnet_lite0", "weights": None},
            "training": {"epochs": 2, "batch_size": 32, "seed": 3},
            "debugger": {},
        },
    )
    return override(config, {"optimizer.lr": 50.0, "debugger.default_action": "stop_training"})


def test_broken_recipe_stops_at_the_firing_step(textures_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run(Experiment(broken(textures_root, out), progress=False))
    findings = read_findings(out)
    assert findings, "no rule fired at lr=50"
    first_train = min(f.global_step for f in findings if f.mode == "train")
    # Stopped at the first firing step, within the first epoch; checkpoint and model saved.
    assert result.history[-1]["epoch"] == 1
    assert len(result.history) == 1
    assert "IssuesFound" in result.rule_statuses.values()
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (result.model_dir / "model.safetensors").is_file()
    assert read_checkpoint_metadata(ckpt)["config"]["debugger"]["default_action"] == (
        "stop_training"
    )
    assert load_trial(out).steps()[-1] == first_train
    saved = json.loads((result.model_dir / "breedclf.json").read_text())
    assert saved["metrics"]["debugger"] == result.rule_statuses

    # Resuming a stopped run finishes at once and keeps the rules' state.
    again = run(Experiment(broken(textures_root, out), progress=False), resume=True)
    assert again.rule_statuses == result.rule_statuses
    assert len(again.history) == 1

    # Offline: the same rule set on the saved trial finds what the live run found.
    rules = [parse_rule(name) for name in result.rule_statuses]
    offline, statuses = evaluate_trial(out, rules)
    assert statuses == result.rule_statuses
    assert offline == findings

    cli = CliRunner().invoke(app, ["debug", str(out), "--rule", "overfit(patience=3)"])
    assert cli.exit_code == 0, cli.output
    assert "overfit: NoIssuesFound" in cli.output
    shown = CliRunner().invoke(app, ["debug", str(out)])
    assert shown.exit_code == 0 and "IssuesFound" in shown.output
    bad = CliRunner().invoke(app, ["debug", str(out), "--rule", "overfit(patiense=3)"])
    assert bad.exit_code != 0
    assert "did you mean 'patience'" in str(bad.exception)


def test_the_default_rules_leave_initialisation_checks_out_for_pretrained_models(
    tmp_path: Path,
) -> None:
    def rules(model: Mapping[str, object], debugger: Mapping[str, object]) -> list[str]:
        config = validate_config(
            ExperimentConfig,
            {"output_dir": str(tmp_path), "model": model, "debugger": debugger},
        )
        (dbg,) = [
            cb for cb in Experiment(config).create_callbacks() if type(cb).__name__ == "Debugger"
        ]
        return [rule.rule_name for rule in dbg.rules]  # type: ignore[attr-defined]

    pretrained = {"name": "efficientnet_lite0", "weights": "DEFAULT"}
    scratch = {"name": "efficientnet_lite0", "weights": None}
    assert "poor_weight_initialization" in rules(scratch, {})
    assert "poor_weight_initialization" not in rules(pretrained, {})
    assert "vanishing_gradient" in rules(pretrained, {})
    listed = {"rules": [{"name": "poor_weight_initialization"}]}
    assert rules(pretrained, listed) == ["poor_weight_initialization"]
