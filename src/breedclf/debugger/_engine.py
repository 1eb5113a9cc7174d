"""Feeds records to rules, live or offline: the one code path both use."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from breedclf.debugger._rule import Finding, Need, Rule, _plain
from breedclf.debugger._trial import (
    COLLECTION_OF,
    FINDINGS_FILE,
    STATUSES_FILE,
    Mode,
    Record,
    load_trial,
    read_lines,
)

__all__ = ["CollectionPlan", "RuleEngine", "evaluate_trial", "plan_collections", "read_findings"]


class RuleEngine:
    """Evaluates rules on records in step order; tracks each rule's status.

    Rules get distinct labels: their registry name, with ``_2``, ``_3``, ... for repeats.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)
        seen: dict[str, int] = {}
        for rule in self.rules:
            base = rule.label or rule.rule_name
            seen[base] = seen.get(base, 0) + 1
            rule.label = base if seen[base] == 1 else f"{base}_{seen[base]}"

    def feed(self, record: Record) -> list[tuple[Rule, Finding]]:
        """Evaluate every rule on ``record``; the findings with the rule that made each."""
        return [(rule, finding) for rule in self.rules for finding in rule.evaluate(record)]

    @property
    def statuses(self) -> dict[str, str]:
        """``{rule label: "IssuesFound" | "NoIssuesFound"}``."""
        return {rule.label: rule.status for rule in self.rules}

    def state_dict(self) -> dict[str, Any]:
        """Every rule's state, by label."""
        return {rule.label: rule.state_dict() for rule in self.rules}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore rules whose label and parameters match (a changed rule starts afresh)."""
        for rule in self.rules:
            saved = state.get(rule.label)
            if saved is not None and saved["params"] == _plain(rule.params()):
                rule.load_state_dict(saved)


@dataclass
class CollectionPlan:
    """What to collect of one collection: reductions, modes and the first steps to save.

    ``reductions`` are computed at the first ``first_steps`` steps; after them only ``later``
    (the reductions some rule reads beyond its first steps), and the collection is saved at
    interval steps only if ``steady`` (some rule reads it then, or its tensors are saved).
    """

    reductions: set[str] = field(default_factory=set)
    modes: set[Mode] = field(default_factory=set)
    first_steps: int = 0
    later: set[str] = field(default_factory=set)
    steady: bool = False

    def add(self, need: Need, modes: set[Mode]) -> None:
        """Plan ``need`` (in ``modes``) into this collection."""
        self.reductions |= set(need.reductions)
        self.modes |= modes
        self.first_steps = max(self.first_steps, need.first_steps)
        if not need.only_first:
            self.later |= set(need.reductions)
            self.steady = True


def _collections_for(need: Need) -> list[str]:
    if need.collection != "*":
        return [need.collection]
    if need.regex:
        named = [c for c in COLLECTION_OF if c in need.regex]
        if named:
            return named
    return ["*"]


def plan_collections(
    rules: Iterable[Rule], save_tensors: Iterable[str] = ()
) -> dict[str, CollectionPlan]:
    """The collections the rules need (and those whose tensors are saved), with reductions.

    ``"*"`` needs (ExplodingTensor's default) apply to every other planned collection.
    """
    plans: dict[str, CollectionPlan] = {}
    everywhere: list[Need] = []
    for rule in rules:
        for need in rule.needs():
            for collection in _collections_for(need):
                if collection == "*":
                    everywhere.append(need)
                    continue
                plans.setdefault(collection, CollectionPlan()).add(need, set(need.modes))
    for collection in save_tensors:
        plan = plans.setdefault(collection, CollectionPlan())
        plan.modes.add("train")
        plan.steady = True
    if everywhere and not any(plan.steady for plan in plans.values()):
        # Alone (or beside first-steps-only needs), "all tensors" means the cheap ones:
        # losses, gradients, weights.
        for collection in ("losses", "gradients", "weights"):
            plan = plans.setdefault(collection, CollectionPlan())
            plan.modes.add("train")
            plan.steady = True
    # A "*" need reads every collection when it is collected anyway: one that only the first
    # steps collect (activations for PoorWeightInitialization) is not kept on for it.
    steady = {collection for collection, plan in plans.items() if plan.steady}
    for need in everywhere:
        for collection, plan in plans.items():
            modes = set(need.modes) & ({"train", "eval"} if collection in _EVAL else {"train"})
            early = need if collection in steady else replace(need, only_first=True)
            plan.add(early, modes or {"train"})
    return plans


# Collections that validation passes record (activations, gradients and weights do not move).
_EVAL = {"losses", "labels"}


def read_findings(run_dir: str | Path) -> list[Finding]:
    """The findings of a run (``debugger/findings.jsonl``), in the order they were found.

    A finding that a resumed run found again (after a crash past its checkpoint) is listed once.
    """
    root = Path(run_dir)
    path = root / "debugger" / FINDINGS_FILE
    if not path.is_file():
        path = root / FINDINGS_FILE
    unique: dict[tuple[str, str, int, str], Finding] = {}
    for data in read_lines(path):
        finding = Finding.from_json(data)
        unique[(finding.rule, finding.mode, finding.step, finding.tensor)] = finding
    return list(unique.values())


def read_statuses(run_dir: str | Path) -> dict[str, str]:
    """The rule statuses a run saved (empty when it recorded none)."""
    root = Path(run_dir)
    for path in (root / "debugger" / STATUSES_FILE, root / STATUSES_FILE):
        if path.is_file():
            data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
            return data
    return {}


def evaluate_trial(
    run_dir: str | Path, rules: Sequence[Rule]
) -> tuple[list[Finding], dict[str, str]]:
    """Re-evaluate ``rules`` on a saved trial, without training: findings and statuses.

    Gives what the same rules with the same parameters found live.

    Raises:
        CheckpointError: The run saved no trial, or not the reductions a rule needs (the
            message names the collection to add to the ``debugger`` section).
    """
    from breedclf.errors import CheckpointError

    trial = load_trial(run_dir)
    saved = {
        (name, reduction) for record in trial.records for name, values in record.tensors.items()
        for reduction in values
    }  # fmt: skip
    from breedclf.debugger._trial import collection_of

    by_collection: dict[str, set[str]] = {}
    for name, reduction in saved:
        by_collection.setdefault(collection_of(name), set()).add(reduction)
    for rule in rules:
        for need in rule.needs():
            # A collection the run had no tensors of (no tanh layers, ...) has nothing to check.
            present = by_collection.get(need.collection)
            missing = [r for r in need.reductions if present and r not in present]
            if missing:
                raise CheckpointError(
                    f"the trial has no {', '.join(missing)} of {need.collection!r}, which "
                    f"{rule!r} reads: the run did not collect it. Add that rule to the run's "
                    "debugger.rules to record it"
                )
    engine = RuleEngine(rules)
    findings = [finding for record in trial.records for _, finding in engine.feed(record)]
    return findings, engine.statuses
