"""Each rule fires on a real training built to show its pathology and stays quiet on a healthy
one; offline re-evaluation of the saved trial finds exactly what the live run found."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from breedclf.debugger import (
    ISSUES_FOUND,
    NO_ISSUES_FOUND,
    Rule,
    all_zero,
    check_input_images,
    class_imbalance,
    confusion,
    dead_relu,
    exploding_tensor,
    loss_not_decreasing,
    overfit,
    overtraining,
    poor_weight_initialization,
    saturated_activation,
    stalled_training_rule,
    tensor_variance,
    unchanged_tensor,
    vanishing_gradient,
    weight_update_ratio,
)
from breedclf.models import ImageClassifier

from .helpers import Hang, Result, Stall, batches, fit, net, offline


def assert_fires(result: Result, rule: Rule) -> None:
    assert result.fired(rule.rule_name), f"{rule!r} did not fire"
    assert result.debugger.statuses[rule.rule_name] == ISSUES_FOUND
    # The same rule, same parameters, on the saved trial: the same findings.
    again = type(rule)(**rule.params())
    assert offline(result, [again]) == result.fired(rule.rule_name)


def assert_quiet(result: Result, rule: Rule) -> None:
    assert result.fired(rule.rule_name) == [], result.fired(rule.rule_name)[:3]
    assert result.debugger.statuses[rule.rule_name] == NO_ISSUES_FOUND
    assert offline(result, [type(rule)(**rule.params())]) == []


def healthy(rule: Rule, tmp: Path, **kw: object) -> Result:
    """A well-posed training: BN-ReLU net, separable balanced data, sensible learning rate."""
    options: dict[str, object] = {"valid": batches(4, seed=99), "epochs": 2, **kw}
    return fit(net(), [rule], batches(20), tmp, **options)  # type: ignore[arg-type]


def scaled(model: ImageClassifier, factor: float) -> ImageClassifier:
    with torch.no_grad():
        for p in model.stages.parameters():
            p.mul_(factor)
    return model


def conv(model: ImageClassifier, stage: int) -> nn.Conv2d:
    block = model.stages[stage]
    assert isinstance(block, nn.Sequential) and isinstance(block[0], nn.Conv2d)
    return block[0]


# ------------------------------------------------------------------------ gradients, tensors


def test_vanishing_gradient(tmp_path: Path) -> None:
    rule = vanishing_gradient()
    deep = net(depth=12, width=4, act=nn.Sigmoid, norm=False)
    assert_fires(fit(deep, [rule], batches(6), tmp_path / "sick"), rule)
    assert_quiet(healthy(vanishing_gradient(), tmp_path / "ok"), rule)


def test_vanishing_gradient_skips_biases_that_batchnorm_cancels(tmp_path: Path) -> None:
    """A conv bias before BatchNorm gets an exactly-zero gradient (BN subtracts the shift):
    AWS's reading of every tensor fires on that healthy net; the default reads weights."""
    every = vanishing_gradient(include_biases=True)
    result = fit(net(conv_bias=True), [every, vanishing_gradient()], batches(6), tmp_path)
    assert result.fired("vanishing_gradient")
    assert {f.tensor for f in result.fired("vanishing_gradient")} <= {
        "gradients/stages.0.0.bias",
        "gradients/stages.1.0.bias",
    }
    quiet = fit(net(conv_bias=True), [vanishing_gradient()], batches(6), tmp_path / "w")
    assert quiet.fired("vanishing_gradient") == []


def test_exploding_tensor(tmp_path: Path) -> None:
    rule = exploding_tensor()
    sick = fit(net(norm=False), [rule], batches(10, scale=100.0), tmp_path / "sick", lr=1e6)
    assert_fires(sick, rule)
    assert_quiet(healthy(exploding_tensor(), tmp_path / "ok"), rule)


def test_loss_not_decreasing(tmp_path: Path) -> None:
    rule = loss_not_decreasing()
    sick = fit(net(), [rule], batches(30), tmp_path / "sick", lr=50.0)
    assert_fires(sick, rule)
    ok = fit(net(), [loss_not_decreasing()], batches(30), tmp_path / "ok", lr=0.01,
             momentum=0.0, save_interval=5)  # fmt: skip
    assert_quiet(ok, rule)


def test_poor_weight_initialization(tmp_path: Path) -> None:
    rule = poor_weight_initialization()
    sick = fit(scaled(net(norm=False, depth=3), 1e3), [rule], batches(12), tmp_path / "sick")
    assert_fires(sick, rule)
    assert_quiet(healthy(poor_weight_initialization(), tmp_path / "ok"), rule)


def test_dead_relu(tmp_path: Path) -> None:
    rule = dead_relu()
    model = net(norm=False)
    with torch.no_grad():
        nn.init.constant_(conv(model, 1).get_parameter("bias"), -100.0)
    assert_fires(fit(model, [rule], batches(4), tmp_path / "sick"), rule)
    assert_quiet(healthy(dead_relu(), tmp_path / "ok"), rule)


def test_saturated_activation(tmp_path: Path) -> None:
    rule = saturated_activation()
    tanh = net(act=nn.Tanh, norm=False)
    assert_fires(fit(tanh, [rule], batches(4, scale=1e4), tmp_path / "sick", lr=1e-6), rule)
    ok = fit(net(act=nn.Tanh), [saturated_activation()], batches(10), tmp_path / "ok")
    assert_quiet(ok, rule)


def test_weight_update_ratio_and_unchanged_tensor(tmp_path: Path) -> None:
    rules: list[Rule] = [weight_update_ratio(), unchanged_tensor()]
    sick = fit(net(), rules, batches(6), tmp_path / "sick", lr=1e-300, momentum=0.0)
    for rule in rules:
        assert_fires(sick, rule)
    ok = fit(net(), [weight_update_ratio(), unchanged_tensor()], batches(6), tmp_path / "ok")
    for rule in rules:
        assert_quiet(ok, rule)


def test_all_zero(tmp_path: Path) -> None:
    rule = all_zero(collection_names="relu_output")
    model = net(norm=False)
    with torch.no_grad():
        first = conv(model, 0)
        first.weight.zero_()
        nn.init.zeros_(first.get_parameter("bias"))
        first.requires_grad_(False)
    assert_fires(fit(model, [rule], batches(4), tmp_path / "sick"), rule)
    assert_quiet(healthy(all_zero(collection_names="relu_output"), tmp_path / "ok"), rule)


def test_tensor_variance(tmp_path: Path) -> None:
    rule = tensor_variance(collection_names="weights", max_threshold=10.0)
    sick = fit(scaled(net(), 1e3), [rule], batches(4), tmp_path / "sick", lr=1e-6)
    assert_fires(sick, rule)
    again = tensor_variance(collection_names="weights", max_threshold=10.0)
    assert_quiet(healthy(again, tmp_path / "ok"), rule)


# ----------------------------------------------------------------------------------- losses


@pytest.mark.slow
def test_overfit_and_overtraining(tmp_path: Path) -> None:
    rules: list[Rule] = [overfit(), overtraining()]
    # Two tiny batches with labels unrelated to the images, many epochs: memorised.
    memorise = batches(2, seed=5, shuffle_labels=True)
    sick = fit(net(width=32), rules, memorise, tmp_path / "sick",
               valid=batches(4, seed=6, shuffle_labels=True), epochs=40)  # fmt: skip
    for rule in rules:
        assert_fires(sick, rule)
    ok = healthy(overfit(), tmp_path / "ok", lr=0.01, momentum=0.0)
    assert_quiet(ok, overfit())
    ok = fit(net(), [overtraining()], batches(30), tmp_path / "ok2", lr=0.01, momentum=0.0,
             save_interval=5)  # fmt: skip
    assert_quiet(ok, overtraining())


# ----------------------------------------------------------------------- labels and inputs


def test_class_imbalance(tmp_path: Path) -> None:
    rule = class_imbalance(samples=200)
    skewed = batches(20, weights=[0.96, 0.02, 0.02])
    assert_fires(fit(net(), [rule], skewed, tmp_path / "sick"), rule)
    assert_quiet(healthy(class_imbalance(samples=200), tmp_path / "ok"), rule)


def test_confusion(tmp_path: Path) -> None:
    rule = confusion()
    sick = fit(net(), [rule], batches(20, shuffle_labels=True), tmp_path / "sick",
               valid=batches(4, seed=99, shuffle_labels=True))  # fmt: skip
    assert_fires(sick, rule)
    assert_quiet(healthy(confusion(), tmp_path / "ok"), rule)


def test_check_input_images(tmp_path: Path) -> None:
    rule = check_input_images(threshold_samples=100)
    raw = batches(10, scale=0.25, offset=0.5)  # pixels in [0, 1]: never normalised
    assert_fires(fit(net(), [rule], raw, tmp_path / "sick"), rule)
    assert_quiet(healthy(check_input_images(threshold_samples=100), tmp_path / "ok"), rule)


def test_stalled_training_rule(tmp_path: Path) -> None:
    rule = stalled_training_rule(threshold=0.5)
    stalled = Stall(batches(4), at=2, seconds=1.5)
    result = fit(net(), [rule], stalled, tmp_path / "sick")
    # The gap's record-based finding is what the saved trial reproduces offline; the
    # watchdog's live alert (during the sleep) comes in addition.
    recorded = [f for f in result.fired(rule.rule_name) if f.mode != "live"]
    assert recorded
    assert offline(result, [stalled_training_rule(threshold=0.5)]) == recorded
    assert result.debugger.statuses[rule.rule_name] == ISSUES_FOUND
    assert_quiet(healthy(stalled_training_rule(), tmp_path / "ok"), stalled_training_rule())


def test_stalled_training_rule_alerts_while_training_hangs(tmp_path: Path) -> None:
    """A hung loader produces no record to check: the watchdog fires during the hang, and
    ``stop_training_on_fire`` ends training at the first step after it."""
    findings = tmp_path / "debugger" / "findings.jsonl"
    hang = Hang(batches(6), at=2, released=lambda: "live" in _text(findings))
    rule = stalled_training_rule(threshold=0.3, stop_training_on_fire=True)
    result = fit(net(), [rule], hang, tmp_path)
    assert hang.released_by == "condition"  # released by the alert, not the time limit
    (alert,) = [f for f in result.fired(rule.rule_name) if f.mode == "live"]
    assert alert.global_step == 2 and alert.value > 0.3
    assert "stalled" in alert.message
    assert result.trainer.state.global_step == 3  # stopped after the step that followed
    assert result.debugger.statuses[rule.rule_name] == ISSUES_FOUND


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(vanishing_gradient(), id="vanishing_gradient"),
        pytest.param(exploding_tensor(), id="exploding_tensor"),
    ],
)
def test_rules_read_only_saved_steps(rule: Rule, tmp_path: Path) -> None:
    result = fit(net(), [rule], batches(10), tmp_path, save_interval=4)
    steps = [r.step for r in __import__("breedclf").debugger.load_trial(tmp_path).records
             if r.mode == "train"]  # fmt: skip
    assert steps == [4, 8]
    assert result.debugger.intervals["gradients"] == 4
