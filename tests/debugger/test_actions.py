"""A rule's Python callable action is called live, with each finding and the trainer."""

from __future__ import annotations

from pathlib import Path

from breedclf.debugger import Finding, exploding_tensor, load_trial, vanishing_gradient
from breedclf.training import Trainer

from .helpers import batches, fit, net


def test_callable_action_gets_each_finding_at_its_step(tmp_path: Path) -> None:
    calls: list[tuple[Finding, Trainer, int]] = []

    def page_me(finding: Finding, trainer: Trainer) -> None:
        calls.append((finding, trainer, trainer.state.global_step))
        trainer.should_stop = True  # an action may end the run, as stop_training does

    exploding = exploding_tensor().on_fire(page_me)
    logged = vanishing_gradient(threshold=1e3)  # fires every step, with the default action
    # Inputs ×100 and lr 1e6: the weights overflow to inf/nan within a few steps.
    result = fit(net(norm=False), [exploding, logged], batches(10, scale=100.0), tmp_path,
                 lr=1e6)  # fmt: skip

    fired = result.fired("exploding_tensor")
    assert fired, "exploding_tensor did not fire at lr=1e6"
    assert [finding for finding, _, _ in calls] == fired
    assert all(trainer is result.trainer for _, trainer, _ in calls)
    # Called live, at the step of the finding, not after training.
    assert [step for _, _, step in calls] == [f.global_step for f in fired]
    # Only the rule that has the callable calls it; the other one only logged.
    assert result.fired("vanishing_gradient")
    # The callable's stop ended the run at that step.
    assert load_trial(tmp_path).steps()[-1] == fired[0].global_step < 10
    assert result.trainer.state.global_step == fired[0].global_step
