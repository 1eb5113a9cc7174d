"""The Debugger callback: collects reductions at saved steps, runs the rules, acts on findings."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from breedclf._io import atomic_path
from breedclf.debugger._engine import CollectionPlan, RuleEngine, plan_collections
from breedclf.debugger._reductions import reduce_many
from breedclf.debugger._rule import Action, Finding, Need, Rule
from breedclf.debugger._trial import FINDINGS_FILE, STATUSES_FILE, Record, TrialWriter, append_line
from breedclf.errors import ConfigurationError
from breedclf.training.callbacks.callback import Callback, EpochResult, GradientInfo, StepOutput

if TYPE_CHECKING:
    from torch.utils.hooks import RemovableHandle

    from breedclf.data import Batch
    from breedclf.training import Trainer

__all__ = ["Debugger", "resolve_save_interval"]

log = logging.getLogger("breedclf.debugger")

_ACTIVATIONS: dict[str, tuple[type[nn.Module], ...]] = {
    "relu": (nn.ReLU, nn.ReLU6),
    "tanh": (nn.Tanh,),
    "sigmoid": (nn.Sigmoid,),
}
# Reductions that give one value per unit or class (kept as lists in the trial).
_VECTOR = ("unit_active", "unit_within(", "channel_mean(", "confusion")
# Reductions the callback computes itself (they need more than the tensor).
_UPDATE = "update_mean_abs"
_ALLCLOSE = "allclose_prev("
#: Saves per run that ``save_interval: auto`` aims for.
AUTO_SAVES_PER_RUN = 50


def resolve_save_interval(interval: int | Literal["auto"], total_steps: int) -> int:
    """``auto`` saves about :data:`AUTO_SAVES_PER_RUN` times per run (every step in short runs)."""
    if interval == "auto":
        return max(1, total_steps // AUTO_SAVES_PER_RUN)
    return interval


class Debugger(Callback):
    """Runs debugger rules during training (see ``docs/debugger.md``).

    At saved steps it reduces the tensors the rules read on the training device (one copy to
    the host per saved step), appends them to the run's trial (``debugger/trial.jsonl``), feeds
    them to the rules and acts on findings: ``log`` (a warning and a line in
    ``debugger/findings.jsonl``), ``stop_training`` (also ends training after this step) or a
    callable ``action(finding, trainer)`` (for a live rule such as ``stalled_training_rule``,
    called from the debugger's watchdog thread). Steps that save nothing only add the loss to a
    running sum on the device. Forward hooks exist only during the forward pass of saved steps,
    and only when a rule reads activations.

    Args:
        rules: The rules (``breedclf.debugger.overfit(patience=3)``, ...).
        directory: Where the trial and findings go (default ``<run_dir>/debugger``).
        default_action: The action of rules that set none.
        save_interval: Save every N optimizer steps; ``"auto"`` about 50 times per run.
        collection_intervals: Per-collection intervals overriding ``save_interval``.
        save_tensors: Collections whose full tensors are saved (safetensors) at saved steps.
        tensor_steps: Only these steps for ``save_tensors`` (default: every saved step).

    Example:
        >>> from breedclf.debugger import Debugger, exploding_tensor, overfit
        >>> debugger = Debugger([overfit(patience=2), exploding_tensor().on_fire("stop_training")])
    """

    order = 500  # after the others' epoch bookkeeping, before the checkpoint saves our state
    rank_zero_only = True
    stops_mid_epoch = True  # a rule's stop_training ends training at its step

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        directory: str | Path | None = None,
        default_action: Action = "log",
        save_interval: int | Literal["auto"] = "auto",
        collection_intervals: dict[str, int] | None = None,
        save_tensors: Sequence[str] = (),
        tensor_steps: Sequence[int] | None = None,
    ) -> None:
        self.engine = RuleEngine(rules)
        self.directory = Path(directory) if directory is not None else None
        self.default_action = default_action
        self.save_interval = save_interval
        self.collection_intervals = dict(collection_intervals or {})
        self.save_tensors = set(save_tensors)
        self.tensor_steps = set(tensor_steps) if tensor_steps is not None else None
        self.plan: dict[str, CollectionPlan] = plan_collections(self.engine.rules, save_tensors)
        # The loss (train and validation) is always recorded: one number per saved step, so
        # ``breedclf debug RUN --rule 'overfit()'`` can re-check any run for the loss rules.
        self.plan.setdefault("losses", CollectionPlan()).add(
            Need("losses", ("mean",), ("train", "eval")), {"train", "eval"}
        )
        self.intervals: dict[str, int] = {}
        self.findings: list[Finding] = []
        self._writer: TrialWriter | None = None
        self._saving: set[str] = set()
        self._pending: dict[str, dict[str, torch.Tensor]] = {}
        self._train_step: int | None = None  # the training step under way (None: validating)
        #: Saved steps whose gradients were not recorded: the fp16 loss scaler skipped them.
        self.scaler_skipped: list[int] = []
        # Scalar reductions of many tensors at once: (tensor names, reduction, values).
        self._blocks: list[tuple[list[str], str, torch.Tensor]] = []
        self._full: dict[str, torch.Tensor] = {}
        self._handles: list[RemovableHandle] = []
        self._modules: list[tuple[str, str, nn.Module]] = []
        self._previous: dict[str, torch.Tensor] = {}
        self._before_step: dict[str, torch.Tensor] = {}
        self._loss_sum: torch.Tensor | None = None
        self._loss_count = 0
        self._confusion: torch.Tensor | None = None
        self._val_sum: torch.Tensor | None = None
        self._val_count = 0
        self._val_confusion: torch.Tensor | None = None
        self._epoch = 0
        self._stop_requested = False
        # Rules evaluated from the watchdog thread share the engine with the training thread.
        self._lock = threading.Lock()
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = threading.Event()

    # ------------------------------------------------------------------------------ results

    @property
    def rules(self) -> list[Rule]:
        """The rules, labelled."""
        return self.engine.rules

    @property
    def statuses(self) -> dict[str, str]:
        """Each rule's status so far: ``IssuesFound`` or ``NoIssuesFound``."""
        return self.engine.statuses

    # ---------------------------------------------------------------------------- lifecycle

    def on_fit_start(self, trainer: Trainer) -> None:
        """Open the trial, size the save intervals, find the activation modules."""
        directory = self.directory
        if directory is None:
            if trainer.run_dir is None:
                raise ConfigurationError(
                    "the Debugger needs a directory: pass directory=... or give the Trainer a "
                    "run_dir"
                )
            directory = trainer.run_dir / "debugger"
        self.directory = directory
        total = trainer.config.epochs * trainer.steps_per_epoch
        default = resolve_save_interval(self.save_interval, total)
        self.intervals = {c: self.collection_intervals.get(c, default) for c in self.plan}
        self._writer = TrialWriter(directory)
        self._writer.start(trainer.state.global_step, time.time())
        self._modules = [
            (kind, name, module)
            for name, module in trainer.model.named_modules()
            for kind, types in _ACTIVATIONS.items()
            if isinstance(module, types)
            and (f"{kind}_input" in self.plan or f"{kind}_output" in self.plan)
        ]
        wanted = [c for c in self.plan if c.endswith(("_input", "_output"))]
        if wanted and not self._modules:
            log.warning("debugger: the model has no %s modules to watch", ", ".join(wanted))
        now = time.time()
        for rule in self.engine.rules:
            rule.start(now)
        live = [rule for rule in self.engine.rules if rule.live]
        if live:
            self._start_watchdog(trainer, live)

    def _start_watchdog(self, trainer: Trainer, rules: list[Rule]) -> None:
        # Polls often enough to notice a stall within a quarter of the shortest threshold.
        interval = min(10.0, *(getattr(r, "threshold", 40.0) / 4 for r in rules))
        self._watchdog_stop.clear()

        def watch() -> None:
            while not self._watchdog_stop.wait(interval):
                with self._lock:
                    for rule in rules:
                        for finding in rule.watch(time.time()):
                            rule.issues += 1
                            self._act(trainer, rule, finding)

        self._watchdog = threading.Thread(target=watch, name="breedclf-debugger-watchdog",
                                          daemon=True)  # fmt: skip
        self._watchdog.start()

    def teardown(self, trainer: Trainer) -> None:
        """Stop the watchdog, remove forward hooks and free device copies."""
        if self._watchdog is not None:
            self._watchdog_stop.set()
            self._watchdog.join()
            self._watchdog = None
        self._remove_hooks()
        self._previous.clear()
        self._before_step.clear()

    def on_fit_end(self, trainer: Trainer) -> None:
        """Write and log the rule statuses."""
        self.write_statuses()
        for label, status in self.statuses.items():
            log.info("debugger rule %s: %s", label, status)

    def write_statuses(self) -> Path | None:
        """Save ``statuses.json`` next to the trial."""
        if self.directory is None:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.directory / STATUSES_FILE) as tmp:
            tmp.write_text(json.dumps(self.statuses, indent=1), encoding="utf-8")
        return self.directory / STATUSES_FILE

    # ------------------------------------------------------------------------- train steps

    def _saves(self, collection: str, step: int) -> bool:
        plan = self.plan[collection]
        return "train" in plan.modes and (
            step <= plan.first_steps or (plan.steady and step % self.intervals[collection] == 0)
        )

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Remember the epoch for eval records."""
        self._epoch = epoch

    def on_train_batch_start(self, trainer: Trainer, batch: Batch, batch_idx: int) -> None:
        """Decide what this step saves; hook activations only if it saves them."""
        step = trainer.state.global_step + 1
        self._train_step = step
        self._saving = {c for c in self.plan if self._saves(c, step)}
        for kind, name, module in self._modules:
            if f"{kind}_input" in self._saving:
                self._handles.append(module.register_forward_pre_hook(self._pre_hook(kind, name)))
            if f"{kind}_output" in self._saving:
                self._handles.append(module.register_forward_hook(self._post_hook(kind, name)))

    def _pre_hook(self, kind: str, name: str) -> Callable[[nn.Module, Any], None]:
        # A pre-hook: in-place activations (ReLU6(inplace=True)) overwrite their input.
        def hook(module: nn.Module, args: Any) -> None:
            self._collect(f"{kind}_input", f"{name}.{kind}_input", args[0])

        return hook

    def _post_hook(self, kind: str, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self._collect(f"{kind}_output", f"{name}.{kind}_output", output)

        return hook

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def on_after_backward(self, trainer: Trainer, step: StepOutput) -> None:
        """The forward pass is over: drop the hooks."""
        self._remove_hooks()

    def on_before_optimizer_step(
        self, trainer: Trainer, step: StepOutput, gradients: GradientInfo
    ) -> None:
        """Reduce gradients (final: unscaled, clipped) and weights before the update.

        At a step the fp16 loss scaler skips (its scaled gradients overflowed, which it
        expects while it searches for the scale) neither gradients nor weights are recorded:
        the gradients are an artefact of the scale, never applied, and the weights do not move
        (no update to measure). Reading the flag waits for the GPU, which the trainer does
        right after anyway.
        """
        if not self._saving & {"gradients", "weights"}:
            return
        if gradients.found_inf is not None and bool(gradients.found_inf.item()):
            self._saving -= {"gradients", "weights"}
            self.scaler_skipped.append(step.global_step)
            log.debug("debugger: step %d skipped by the loss scaler", step.global_step)
            return
        needs_update = _UPDATE in self.plan.get("weights", CollectionPlan()).reductions
        grads: tuple[list[str], list[torch.Tensor]] = ([], [])
        weights: tuple[list[str], list[torch.Tensor]] = ([], [])
        for name, param in trainer.model.named_parameters():
            if not param.requires_grad:
                continue
            if "gradients" in self._saving and param.grad is not None:
                grads[0].append(f"gradients/{name}")
                grads[1].append(param.grad)
            # smdebug's split: "weights" are the *weight tensors, biases are not (a zero-
            # initialised bias has no meaningful update/weight ratio).
            if "weights" in self._saving and name.endswith("weight"):
                weights[0].append(f"weights/{name}")
                weights[1].append(param)
                if needs_update:
                    self._before_step[name] = param.detach().clone()
        # Each collection's tensors are reduced together: one fused pass, not ~150 small ones.
        self._collect_many("gradients", *grads)
        self._collect_many("weights", *weights)

    def on_train_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        """Accumulate losses/labels; at saved steps, reduce the rest and run the rules."""
        num_classes = trainer.model.num_classes
        if "losses" in self.plan:
            loss = step.loss_unsmoothed.detach().float()
            self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
            self._loss_count += 1
        if "labels" in self.plan and "train" in self.plan["labels"].modes:
            self._confusion = _add_confusion(self._confusion, step, num_classes)
        if not self._saving:
            return
        if "losses" in self._saving and self._loss_sum is not None:
            self._collect("losses", "loss", self._loss_sum / self._loss_count)
            self._loss_sum, self._loss_count = None, 0
        if "labels" in self._saving and self._confusion is not None:
            self._pending.setdefault("labels", {})["confusion"] = self._confusion.float()
            self._confusion = None
        if "predictions" in self._saving:
            self._collect("predictions", "predictions", step.outputs.argmax(dim=1))
        if "labels" in self._saving:
            self._collect("labels", "labels", step.targets)
        if "inputs" in self._saving:
            self._collect("inputs", "inputs", step.inputs)
        if self._before_step:
            for name, param in trainer.model.named_parameters():
                before = self._before_step.pop(name, None)
                if before is not None:
                    update = (param.detach().float() - before.float()).abs().mean()
                    self._pending[f"weights/{name}"][_UPDATE] = update.reshape(-1)
        self._flush(trainer, "train", step.global_step, step.global_step, step.epoch)
        self._saving = set()

    # -------------------------------------------------------------------------- validation

    def on_validation_start(self, trainer: Trainer) -> None:
        """Start the validation pass's sums."""
        self._train_step = None
        self._val_sum = None
        self._val_count = 0
        self._val_confusion = None

    def on_validation_batch_end(self, trainer: Trainer, step: StepOutput) -> None:
        """Add the batch to the pass's loss sum and confusion matrix (on the device)."""
        if "losses" in self.plan and "eval" in self.plan["losses"].modes:
            n = step.targets.shape[0]
            loss = step.loss.detach().float() * n
            self._val_sum = loss if self._val_sum is None else self._val_sum + loss
            self._val_count += n
        if "labels" in self.plan and "eval" in self.plan["labels"].modes:
            self._val_confusion = _add_confusion(
                self._val_confusion, step, trainer.model.num_classes
            )

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """Save the pass as one ``eval`` record (step = epoch) and run the rules."""
        if self._val_count and self._val_sum is not None:
            self._collect("losses", "loss", self._val_sum / self._val_count)
        if self._val_confusion is not None:
            self._pending.setdefault("labels", {})["confusion"] = self._val_confusion.float()
        if self._pending or self._blocks:
            step = trainer.state.global_step
            self._flush(trainer, "eval", self._epoch, step, self._epoch)

    def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:
        """Log that a rule stopped training (the trainer ended the epoch at its step)."""
        if self._stop_requested:
            log.warning(
                "debugger: training stopped at step %d by a rule (action stop_training)",
                trainer.state.global_step,
            )
            self._stop_requested = False

    # ------------------------------------------------------------------------------ helpers

    def _collect(self, collection: str, name: str, tensor: torch.Tensor) -> None:
        self._collect_many(collection, [name], [tensor])

    def _collect_many(self, collection: str, names: list[str], tensors: list[torch.Tensor]) -> None:
        """Reduce the tensors of one collection together (see :func:`reduce_many`)."""
        plan = self.plan.get(collection)
        if plan is None or not tensors:
            return
        # Past the first steps, only what some rule reads then (a validation pass: everything).
        step = self._train_step
        wanted = plan.reductions if step is None or step <= plan.first_steps else plan.later
        special = {_UPDATE, "confusion"}
        plain = {r for r in wanted if r not in special and not r.startswith(_ALLCLOSE)}
        reduced = reduce_many(tensors, plain)
        if reduced.index:
            block = [names[i] for i in reduced.index]
            self._blocks.extend((block, red, vector) for red, vector in reduced.vectors.items())
        for name, tensor, values in zip(names, tensors, reduced.single, strict=True):
            pending = self._pending.setdefault(name, {})
            for reduction in sorted(wanted):
                if reduction in values:
                    pending[reduction] = values[reduction]
                elif reduction.startswith(_ALLCLOSE):
                    pending[reduction] = self._allclose_prev(name, tensor, reduction)
            if collection in self.save_tensors and collection in self._saving:
                self._full[name] = tensor.detach().clone()

    def _allclose_prev(self, name: str, tensor: torch.Tensor, reduction: str) -> torch.Tensor:
        rtol, atol, equal_nan = reduction[len(_ALLCLOSE) : -1].split(",")
        current = tensor.detach().clone()
        previous = self._previous.get(name)
        self._previous[name] = current
        if previous is None or previous.shape != current.shape:
            return torch.full((1,), float("nan"), device=current.device)
        close = torch.allclose(
            current, previous, rtol=float(rtol), atol=float(atol), equal_nan=equal_nan == "True"
        )
        return torch.tensor([float(close)], device=current.device)

    def _flush(self, trainer: Trainer, mode: Literal["train", "eval"], step: int,
               global_step: int, epoch: int) -> None:  # fmt: skip
        pending, self._pending = self._pending, {}
        blocks, self._blocks = self._blocks, []
        full, self._full = self._full, {}
        keys = [(name, red) for name, values in pending.items() for red in values]
        if not keys and not blocks:
            return
        parts = [pending[name][red].reshape(-1).float() for name, red in keys]
        parts += [vector.float() for _, _, vector in blocks]
        device = parts[0].device
        host = torch.cat([p.to(device) for p in parts]).cpu().tolist()  # the one sync
        tensors: dict[str, dict[str, Any]] = {name: {} for name in pending}
        offset = 0
        for (name, red), part in zip(keys, parts[: len(keys)], strict=True):
            chunk = host[offset : offset + part.numel()]
            offset += part.numel()
            tensors[name][red] = chunk if red.startswith(_VECTOR) else chunk[0]
        for names, red, _ in blocks:
            for name, value in zip(names, host[offset : offset + len(names)], strict=True):
                tensors.setdefault(name, {})[red] = value
            offset += len(names)
        record = Record(mode, step, global_step, epoch, time.time(), tensors)
        assert self._writer is not None  # set in on_fit_start
        keep = mode == "train" and (self.tensor_steps is None or step in self.tensor_steps)
        self._writer.write(record, full if keep else None)
        with self._lock:
            for rule, finding in self.engine.feed(record):
                self._act(trainer, rule, finding)

    def _act(self, trainer: Trainer, rule: Rule, finding: Finding) -> None:
        assert self.directory is not None
        self.findings.append(finding)
        append_line(self.directory / FINDINGS_FILE, finding.to_json())
        log.warning(
            "debugger: %s found an issue at %s step %d: %s. Try: %s",
            finding.rule, finding.mode, finding.step, finding.message, finding.advice,
        )  # fmt: skip
        action = rule.action or self.default_action
        if action == "stop_training":
            # From the watchdog thread, too: the trainer checks the flag after each step.
            if not trainer.should_stop:
                log.warning("debugger: %s asks to stop training (stop_training)", finding.rule)
            trainer.should_stop = True
            self._stop_requested = True
        elif callable(action):
            action(finding, trainer)

    # -------------------------------------------------------------------------- checkpoint

    def state_dict(self) -> dict[str, Any]:
        """The rules' state (the trial and findings are append-only files)."""
        with self._lock:
            return {"rules": self.engine.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the rules' state."""
        self.engine.load_state_dict(state["rules"])


def _add_confusion(total: torch.Tensor | None, step: StepOutput, num_classes: int) -> torch.Tensor:
    predicted = step.outputs.detach().argmax(dim=1)
    index = step.targets * num_classes + predicted
    counts = torch.bincount(index, minlength=num_classes * num_classes)
    return counts if total is None else total + counts
