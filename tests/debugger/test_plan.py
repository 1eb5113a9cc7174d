"""What a saved step computes: only the reductions some rule reads at that step."""

from __future__ import annotations

from pathlib import Path

from breedclf.debugger import exploding_tensor, load_trial, poor_weight_initialization

from .helpers import batches, fit, net


def test_first_steps_only_reductions_stop_after_the_first_steps(tmp_path: Path) -> None:
    # PoorWeightInitialization reads activation variances and gradient percentiles in its first
    # 10 steps only; ExplodingTensor reads every collected tensor, at every saved step.
    rules = [poor_weight_initialization(), exploding_tensor()]
    result = fit(net(), rules, batches(14), tmp_path, save_interval=2)
    trial = load_trial(tmp_path)
    assert trial.steps() == [*range(1, 11), 12, 14]
    relu = trial.tensor_names(collection="relu_input")
    grads = trial.tensor_names(collection="gradients")
    assert relu and grads
    for step in range(1, 11):
        record = next(r for r in trial.records if r.mode == "train" and r.step == step)
        assert set(record.tensors[grads[0]]) == {"p5", "p95", "nan", "inf"}
        assert set(record.tensors[relu[0]]) == {"variance", "nan", "inf"}
    for step in (12, 14):
        record = next(r for r in trial.records if r.mode == "train" and r.step == step)
        assert set(record.tensors[grads[0]]) == {"nan", "inf"}  # no percentiles
        assert not any(name in record.tensors for name in relu)  # no activation hooks
    assert result.debugger.statuses == {
        "poor_weight_initialization": "NoIssuesFound",
        "exploding_tensor": "NoIssuesFound",
    }
