"""SageMaker Debugger's built-in rules, with AWS's names, parameters and defaults.

Conditions follow AWS's developer guide (see ``docs/debugger.md`` for each rule and where
breedclf had to choose, e.g. what a "step" of a validation loss is).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from breedclf.debugger._reductions import unit_within
from breedclf.debugger._rule import (
    Finding,
    Need,
    Rule,
    as_collections,
    register_rule,
    require,
    select,
)
from breedclf.debugger._trial import Record

__all__ = [
    "AllZero",
    "CheckInputImages",
    "ClassImbalance",
    "Confusion",
    "DeadRelu",
    "ExplodingTensor",
    "LossNotDecreasing",
    "Overfit",
    "Overtraining",
    "PoorWeightInitialization",
    "SaturatedActivation",
    "StalledTrainingRule",
    "TensorVariance",
    "UnchangedTensor",
    "VanishingGradient",
    "WeightUpdateRatio",
    "all_zero",
    "check_input_images",
    "class_imbalance",
    "confusion",
    "dead_relu",
    "exploding_tensor",
    "loss_not_decreasing",
    "overfit",
    "overtraining",
    "poor_weight_initialization",
    "saturated_activation",
    "stalled_training_rule",
    "tensor_variance",
    "unchanged_tensor",
    "vanishing_gradient",
    "weight_update_ratio",
]


def _loss(record: Record) -> float | None:
    value = record.tensors.get("loss", {}).get("mean")
    return value if isinstance(value, float) else None


def _confusion(record: Record) -> list[list[float]] | None:
    flat = record.tensors.get("labels", {}).get("confusion")
    if not isinstance(flat, list):
        return None
    n = math.isqrt(len(flat))
    return [flat[i * n : (i + 1) * n] for i in range(n)]


def _add(total: list[list[float]], part: list[list[float]]) -> list[list[float]]:
    if not total:
        return [list(row) for row in part]
    return [[a + b for a, b in zip(r, s, strict=True)] for r, s in zip(total, part, strict=True)]


@register_rule
class VanishingGradient(Rule):
    """Fires when mean(|g|) of a gradient tensor is below ``threshold`` at a saved step.

    Bias gradients are skipped unless ``include_biases``: a bias followed (through linear
    layers only) by a BatchNorm in training mode gets an exactly-zero gradient by construction,
    since that BatchNorm subtracts any constant shift again (every projection BatchNorm of an
    EfficientNet or MobileNet block). Those tensors would fire at every step of a healthy
    training; a gradient that really vanishes shows in the weights too. (A breedclf parameter:
    AWS's rule has only ``threshold``; ``include_biases=True`` reads every tensor as it does.)
    """

    advice = (
        "gradients barely reach these layers: use ReLU-family activations, normalisation, "
        "residual connections or a better initialisation; check the learning rate"
    )

    def __init__(self, *, threshold: float = 1e-7, include_biases: bool = False) -> None:
        require(threshold > 0, f"threshold must be > 0, got {threshold}")
        self.threshold = threshold
        self.include_biases = include_biases

    def needs(self) -> list[Need]:
        return [Need("gradients", ("mean_abs",))]

    def check(self, record: Record) -> list[Finding]:
        values = [
            (v, name) for name, v in select(record, ("gradients",), None, "mean_abs")
            if isinstance(v, float) and (self.include_biases or not name.endswith("bias"))
        ]  # fmt: skip
        low = [(v, name) for v, name in values if v < self.threshold]
        if not low:
            return []
        value, name = min(low)
        return [
            self.finding(
                record, name, value,
                f"mean |gradient| of {name} is {value:.3g} < {self.threshold:g} "
                f"({len(low)} of {len(values)} gradient tensors)",
            )
        ]  # fmt: skip


@register_rule
class ExplodingTensor(Rule):
    """Fires when an inspected tensor holds NaN (or ±inf unless ``only_nan``)."""

    advice = (
        "lower the learning rate, clip gradients (training.grad_clip_norm), check the inputs "
        "and the loss for log(0) or division by zero"
    )

    def __init__(
        self,
        *,
        collection_names: str | list[str] | None = None,
        tensor_regex: str | None = None,
        only_nan: bool = False,
    ) -> None:
        self.collection_names = collection_names
        self.tensor_regex = tensor_regex
        self.only_nan = only_nan

    def _reductions(self) -> tuple[str, ...]:
        return ("nan",) if self.only_nan else ("nan", "inf")

    def needs(self) -> list[Need]:
        collections = as_collections(self.collection_names)
        if collections is None and self.tensor_regex is None:
            return [Need("*", self._reductions(), ("train", "eval"))]
        return [
            Need(c, self._reductions(), ("train", "eval"), self.tensor_regex)
            for c in (collections or ("*",))
        ]

    def check(self, record: Record) -> list[Finding]:
        collections = as_collections(self.collection_names)
        for reduction in self._reductions():
            for name, value in select(record, collections, self.tensor_regex, reduction):
                if isinstance(value, float) and value > 0:
                    kind = "NaN" if reduction == "nan" else "infinite"
                    return [
                        self.finding(
                            record, name, value,
                            f"{name} holds {int(value)} {kind} values at step {record.step}",
                        )
                    ]  # fmt: skip
        return []


@register_rule
class LossNotDecreasing(Rule):
    """Fires when the loss did not drop by ``diff_percent`` % over ``num_steps`` steps."""

    advice = (
        "the loss is stuck or rising: check the learning rate (too high oscillates, too low "
        "crawls), the labels, and that the parameters you expect to train are not frozen"
    )
    state_attrs = ("history", "last_checked")

    def __init__(
        self,
        *,
        tensor_regex: str | None = None,
        use_losses_collection: bool = True,
        num_steps: int = 10,
        diff_percent: float = 0.1,
        increase_threshold_percent: float = 5.0,
        mode: Literal["TRAIN", "EVAL", "GLOBAL"] | None = None,
    ) -> None:
        require(num_steps >= 1, f"num_steps must be >= 1, got {num_steps}")
        require(0 <= diff_percent <= 100, f"diff_percent must be in [0, 100], got {diff_percent}")
        require(
            mode in (None, "TRAIN", "EVAL", "GLOBAL"),
            f"mode must be TRAIN, EVAL, GLOBAL or None, got {mode!r}",
        )
        self.tensor_regex = tensor_regex
        self.use_losses_collection = use_losses_collection
        self.num_steps = num_steps
        self.diff_percent = diff_percent
        self.increase_threshold_percent = increase_threshold_percent
        self.mode = mode
        self.history: list[list[float]] = []  # [step, loss]
        self.last_checked: int = -1

    @property
    def _mode(self) -> str:
        return "eval" if self.mode == "EVAL" else "train"

    def needs(self) -> list[Need]:
        mode: Any = (self._mode,)
        if self.tensor_regex is not None:
            return [Need("*", ("mean",), mode, self.tensor_regex)]
        return [Need("losses", ("mean",), mode)]

    def check(self, record: Record) -> list[Finding]:
        if record.mode != self._mode:
            return []
        if self.tensor_regex is not None and not self.use_losses_collection:
            found = list(select(record, None, self.tensor_regex, "mean"))
            loss = found[0][1] if found and isinstance(found[0][1], float) else None
        else:
            loss = _loss(record)
        if loss is None:
            return []
        step = record.step
        self.history.append([step, loss])
        if self.last_checked < 0:
            self.last_checked = step
            return []
        if step - self.last_checked < self.num_steps:
            return []
        earlier = [h for h in self.history if h[0] <= step - self.num_steps]
        if not earlier:
            return []
        before_step, before = earlier[-1]
        self.last_checked = step
        # Only the newest value at least num_steps back is ever read again.
        self.history = [h for h in self.history if h[0] >= before_step]
        if math.isfinite(before) and math.isfinite(loss):
            drop = (before - loss) / abs(before) * 100 if before else 0.0
            if drop >= self.diff_percent:
                return []
            if -drop > self.increase_threshold_percent:
                what = f"rose by {-drop:.2f} % (more than {self.increase_threshold_percent:g} %)"
            else:
                what = f"changed by {-drop:+.3f} % (needs a drop of {self.diff_percent:g} %)"
        else:
            what = "is not finite"
        return [
            self.finding(
                record, "loss", loss,
                f"loss {what} from {before:.4g} at step {int(before_step)} to {loss:.4g} at "
                f"step {step}",
            )
        ]  # fmt: skip


@register_rule
class Overfit(Rule):
    """Fires when (val − train)/train loss exceeds ``ratio_threshold`` for ``patience`` evals.

    The training loss is the mean of the saved training losses of the epoch; the validation
    loss, the mean of the validation pass.
    """

    advice = (
        "the model fits the training set better than validation: add augmentation or "
        "regularisation (weight decay, dropout), stop earlier, or get more data"
    )
    state_attrs = ("train_sum", "train_count", "streak")

    def __init__(
        self,
        *,
        tensor_regex: str | None = None,
        start_step: int = 0,
        patience: int = 1,
        ratio_threshold: float = 0.1,
    ) -> None:
        require(patience >= 1, f"patience must be >= 1, got {patience}")
        self.tensor_regex = tensor_regex
        self.start_step = start_step
        self.patience = patience
        self.ratio_threshold = ratio_threshold
        self.train_sum = 0.0
        self.train_count = 0
        self.streak = 0

    def needs(self) -> list[Need]:
        return [Need("losses", ("mean",), ("train", "eval"))]

    def check(self, record: Record) -> list[Finding]:
        loss = _loss(record)
        if loss is None or record.global_step < self.start_step:
            return []
        if record.mode == "train":
            self.train_sum += loss
            self.train_count += 1
            return []
        if not self.train_count:
            return []
        train = self.train_sum / self.train_count
        self.train_sum, self.train_count = 0.0, 0
        ratio = (loss - train) / train if train > 0 else math.inf
        self.streak = self.streak + 1 if not ratio <= self.ratio_threshold else 0
        if self.streak < self.patience:
            return []
        return [
            self.finding(
                record, "loss", ratio,
                f"validation loss {loss:.4g} is {ratio:.1%} above the training loss "
                f"{train:.4g} (threshold {self.ratio_threshold:.0%}) for {self.streak} "
                "validation passes",
            )
        ]  # fmt: skip


@register_rule
class Overtraining(Rule):
    """Fires when the train (validation) loss has not improved by ``delta`` for its patience."""

    advice = (
        "training has stopped improving: stop earlier (training.early_stopping), or change "
        "the learning-rate schedule"
    )
    state_attrs = ("best", "waited")

    def __init__(
        self, *, patience_train: int = 5, patience_validation: int = 10, delta: float = 0.01
    ) -> None:
        require(patience_train >= 1 and patience_validation >= 1, "patience must be >= 1")
        self.patience_train = patience_train
        self.patience_validation = patience_validation
        self.delta = delta
        self.best: dict[str, float] = {}
        self.waited: dict[str, int] = {}

    def needs(self) -> list[Need]:
        return [Need("losses", ("mean",), ("train", "eval"))]

    def check(self, record: Record) -> list[Finding]:
        loss = _loss(record)
        if loss is None:
            return []
        mode = record.mode
        best = self.best.get(mode)
        if best is None or loss < best - self.delta:
            self.best[mode], self.waited[mode] = loss, 0
            return []
        self.waited[mode] = self.waited.get(mode, 0) + 1
        patience = self.patience_train if mode == "train" else self.patience_validation
        if self.waited[mode] < patience:
            return []
        split = "training" if mode == "train" else "validation"
        return [
            self.finding(
                record, "loss", loss,
                f"{split} loss has not improved by {self.delta:g} for {self.waited[mode]} "
                f"saved steps (best {best:.4g}, now {loss:.4g})",
            )
        ]  # fmt: skip


@register_rule
class PoorWeightInitialization(Rule):
    """In the first ``steps`` steps: activation variance spread, gradient spread, loss stall."""

    advice = (
        "initialise weights for the activation (Kaiming for ReLU, Xavier for tanh), add "
        "normalisation, or start from pretrained weights"
    )
    state_attrs = ("first_loss", "best_loss", "loss_checked")

    def __init__(
        self,
        *,
        activation_inputs_regex: str = ".*relu_input",
        threshold: float = 10.0,
        distribution_range: float = 0.001,
        patience: int = 5,
        steps: int = 10,
    ) -> None:
        require(steps >= 1 and patience >= 1, "steps and patience must be >= 1")
        self.activation_inputs_regex = activation_inputs_regex
        self.threshold = threshold
        self.distribution_range = distribution_range
        self.patience = patience
        self.steps = steps
        self.first_loss: float | None = None
        self.best_loss: float | None = None
        self.loss_checked = False

    def needs(self) -> list[Need]:
        first = max(self.steps, self.patience + 1)
        return [
            Need("*", ("variance",), ("train",), self.activation_inputs_regex, first, True),
            Need("gradients", ("p5", "p95"), ("train",), None, first, True),
            Need("losses", ("mean",), ("train",), None, first, True),
        ]

    def check(self, record: Record) -> list[Finding]:
        if record.mode != "train":
            return []
        found = []
        if record.step <= self.steps:
            found += self._check_variance(record) + self._check_gradients(record)
        loss = _loss(record)
        if loss is not None and not self.loss_checked:
            if self.first_loss is None:
                self.first_loss = self.best_loss = loss
            elif record.step <= self.patience + 1:
                self.best_loss = min(self.best_loss or loss, loss)
            if record.step >= self.patience + 1:
                self.loss_checked = True
                first, best = self.first_loss, self.best_loss
                if best is not None and not best < first:
                    found.append(
                        self.finding(
                            record, "loss", loss,
                            f"loss did not decrease in the first {self.patience} steps "
                            f"(from {first:.4g}, best {best:.4g})",
                        )
                    )  # fmt: skip
        return found

    def _check_variance(self, record: Record) -> list[Finding]:
        variances = {
            name: v
            for name, v in select(record, None, self.activation_inputs_regex, "variance")
            if isinstance(v, float)
        }
        if len(variances) < 2:
            return []
        low, high = min(variances.values()), max(variances.values())
        ratio = high / low if low > 0 else math.inf
        if ratio <= self.threshold:
            return []
        name = max(variances, key=lambda n: variances[n])
        return [
            self.finding(
                record, name, ratio,
                f"activation-input variances differ by {ratio:.3g}x across layers (more than "
                f"{self.threshold:g}x; largest {high:.3g} at {name}, smallest {low:.3g})",
            )
        ]  # fmt: skip

    def _check_gradients(self, record: Record) -> list[Finding]:
        spreads = []
        for name, values in record.tensors.items():
            p5, p95 = values.get("p5"), values.get("p95")
            if name.startswith("gradients/") and isinstance(p5, float) and isinstance(p95, float):
                spreads.append((p95 - p5, name))
        if not spreads:
            return []
        # The gradient distribution of the network: the widest spread among its tensors.
        spread, name = max(spreads)
        if spread >= self.distribution_range:
            return []
        return [
            self.finding(
                record, name, spread,
                f"gradients are concentrated: the widest p95-p5 spread is {spread:.3g} "
                f"({name}) < {self.distribution_range:g}",
            )
        ]  # fmt: skip


def _layer_share(values: Any, threshold_percent: float) -> float:
    """Percent of units whose per-unit fraction (0..1) is below ``threshold_percent`` %."""
    units = values if isinstance(values, list) else [values]
    low = sum(1 for u in units if u * 100 < threshold_percent)
    return 100.0 * low / max(len(units), 1)


@register_rule
class DeadRelu(Rule):
    """Fires when more than ``threshold_layer`` % of a ReLU layer's units are dead.

    A unit (a channel of a convolution, a feature of a linear layer) is dead when it is active
    (> 0) for fewer than ``threshold_inactivity`` % of the batch's values.
    """

    advice = (
        "many ReLUs never activate: lower the learning rate, fix large negative biases or the "
        "initialisation, or use LeakyReLU"
    )

    def __init__(
        self,
        *,
        tensor_regex: str = ".*relu_output",
        threshold_inactivity: float = 1.0,
        threshold_layer: float = 50.0,
    ) -> None:
        self.tensor_regex = tensor_regex
        self.threshold_inactivity = threshold_inactivity
        self.threshold_layer = threshold_layer

    def needs(self) -> list[Need]:
        return [Need("relu_output", ("unit_active",), ("train",), self.tensor_regex)]

    def check(self, record: Record) -> list[Finding]:
        for name, values in select(record, None, self.tensor_regex, "unit_active"):
            dead = _layer_share(values, self.threshold_inactivity)
            if dead > self.threshold_layer:
                return [
                    self.finding(
                        record, name, dead,
                        f"{dead:.0f} % of the units of {name} are dead (active < "
                        f"{self.threshold_inactivity:g} % of the time; limit "
                        f"{self.threshold_layer:g} %)",
                    )
                ]  # fmt: skip
        return []


@register_rule
class SaturatedActivation(Rule):
    """Fires when more than ``threshold_layer`` % of a tanh/sigmoid layer's units saturate.

    A unit is saturated when its inputs lie within ``[min, max]`` for fewer than
    ``threshold_inactivity`` % of the batch's values.
    """

    advice = (
        "tanh/sigmoid inputs are in the flat region: normalise inputs, add batch "
        "normalisation, lower the learning rate or the weight scale"
    )

    def __init__(
        self,
        *,
        tanh_min: float = -9.4999,
        tanh_max: float = 9.4999,
        sigmoid_min: float = -23.0,
        sigmoid_max: float = 16.99999,
        threshold_inactivity: float = 1.0,
        threshold_layer: float = 50.0,
    ) -> None:
        self.tanh_min, self.tanh_max = tanh_min, tanh_max
        self.sigmoid_min, self.sigmoid_max = sigmoid_min, sigmoid_max
        self.threshold_inactivity = threshold_inactivity
        self.threshold_layer = threshold_layer

    def _ranges(self) -> dict[str, str]:
        return {
            "tanh_input": unit_within(self.tanh_min, self.tanh_max),
            "sigmoid_input": unit_within(self.sigmoid_min, self.sigmoid_max),
        }

    def needs(self) -> list[Need]:
        return [Need(c, (r,)) for c, r in self._ranges().items()]

    def check(self, record: Record) -> list[Finding]:
        for collection, reduction in self._ranges().items():
            for name, values in select(record, (collection,), None, reduction):
                saturated = _layer_share(values, self.threshold_inactivity)
                if saturated > self.threshold_layer:
                    return [
                        self.finding(
                            record, name, saturated,
                            f"{saturated:.0f} % of the units of {name} are saturated (limit "
                            f"{self.threshold_layer:g} %)",
                        )
                    ]  # fmt: skip
        return []


@register_rule
class WeightUpdateRatio(Rule):
    """Fires when mean|update| / (mean|weight| + epsilon) of a step leaves its range."""

    advice = (
        "updates are too large (lower the learning rate) or too small (raise it; check for "
        "frozen or disconnected parameters)"
    )
    state_attrs = ("last_checked",)

    def __init__(
        self,
        *,
        num_steps: int | None = None,
        large_threshold: float = 10.0,
        small_threshold: float = 1e-8,
        epsilon: float = 1e-9,
    ) -> None:
        self.num_steps = num_steps
        self.large_threshold = large_threshold
        self.small_threshold = small_threshold
        self.epsilon = epsilon
        self.last_checked = -1

    def needs(self) -> list[Need]:
        return [Need("weights", ("mean_abs", "update_mean_abs"))]

    def check(self, record: Record) -> list[Finding]:
        if record.mode != "train":
            return []
        if (
            self.num_steps
            and self.last_checked >= 0
            and (record.step - self.last_checked < self.num_steps)
        ):
            return []
        found = []
        for name, values in record.tensors.items():
            weight, update = values.get("mean_abs"), values.get("update_mean_abs")
            if not isinstance(weight, float) or not isinstance(update, float):
                continue
            self.last_checked = record.step
            ratio = update / (weight + self.epsilon)
            if ratio > self.large_threshold or ratio < self.small_threshold:
                found.append((ratio, name))
        if not found:
            return []
        ratio, name = max(found, key=lambda f: abs(math.log10(max(f[0], 1e-300))))
        return [
            self.finding(
                record, name, ratio,
                f"update/weight ratio of {name} is {ratio:.3g} (outside "
                f"[{self.small_threshold:g}, {self.large_threshold:g}]; {len(found)} tensors)",
            )
        ]  # fmt: skip


class _TensorRule(Rule):
    """A rule over ``collection_names`` / ``tensor_regex`` (one of them required)."""

    def _targets(self) -> list[Need]:
        collections = as_collections(getattr(self, "collection_names", None))
        regex: str | None = getattr(self, "tensor_regex", None)
        reductions = self.reductions()
        if collections is None:
            return [Need("*", reductions, ("train",), regex)]
        return [Need(c, reductions, ("train",), regex) for c in collections]

    def reductions(self) -> tuple[str, ...]:
        raise NotImplementedError

    def needs(self) -> list[Need]:
        return self._targets()


@register_rule
class AllZero(_TensorRule):
    """Fires when at least ``threshold`` % of a tensor's values are zero."""

    advice = "a layer outputs or learns nothing: check its initialisation, mask or inputs"

    def __init__(
        self,
        *,
        collection_names: str | list[str] | None = None,
        tensor_regex: str | None = None,
        threshold: float = 100.0,
    ) -> None:
        require(
            collection_names is not None or tensor_regex is not None,
            "all_zero needs collection_names or tensor_regex",
        )
        self.collection_names = collection_names
        self.tensor_regex = tensor_regex
        self.threshold = threshold

    def reductions(self) -> tuple[str, ...]:
        return ("zero_fraction",)

    def check(self, record: Record) -> list[Finding]:
        colls = as_collections(self.collection_names)
        for name, value in select(record, colls, self.tensor_regex, "zero_fraction"):
            if isinstance(value, float) and value * 100 >= self.threshold:
                return [
                    self.finding(
                        record, name, value * 100,
                        f"{value:.1%} of {name} is zero (threshold {self.threshold:g} %)",
                    )
                ]  # fmt: skip
        return []


def _allclose(rtol: float, atol: float, equal_nan: bool) -> str:
    return f"allclose_prev({rtol!r},{atol!r},{equal_nan!r})"


@register_rule
class UnchangedTensor(_TensorRule):
    """Fires when a tensor stayed allclose over the last ``num_steps`` saved steps.

    Without ``collection_names``/``tensor_regex`` it inspects the ``weights`` collection.
    """

    advice = (
        "these parameters do not change: check the learning rate (0?), the freeze policy and "
        "that the optimizer holds them"
    )
    state_attrs = ("streaks",)

    def __init__(
        self,
        *,
        collection_names: str | list[str] | None = None,
        tensor_regex: str | None = None,
        num_steps: int = 3,
        rtol: float = 1e-5,
        atol: float = 1e-8,
        equal_nan: bool = False,
    ) -> None:
        require(num_steps >= 2, f"num_steps must be >= 2, got {num_steps}")
        if collection_names is None and tensor_regex is None:
            collection_names = "weights"
        self.collection_names = collection_names
        self.tensor_regex = tensor_regex
        self.num_steps = num_steps
        self.rtol, self.atol, self.equal_nan = rtol, atol, equal_nan
        self.streaks: dict[str, int] = {}

    def reductions(self) -> tuple[str, ...]:
        return (_allclose(self.rtol, self.atol, self.equal_nan),)

    def check(self, record: Record) -> list[Finding]:
        reduction = self.reductions()[0]
        colls = as_collections(self.collection_names)
        unchanged = []
        for name, value in select(record, colls, self.tensor_regex, reduction):
            if value == 1.0:
                self.streaks[name] = self.streaks.get(name, 1) + 1
                if self.streaks[name] >= self.num_steps:
                    unchanged.append(name)
            elif value == 0.0:
                self.streaks[name] = 1
        if not unchanged:
            return []
        return [
            self.finding(
                record, unchanged[0], float(self.streaks[unchanged[0]]),
                f"{len(unchanged)} tensors (e.g. {unchanged[0]}) did not change over the last "
                f"{self.num_steps} saved steps",
            )
        ]  # fmt: skip


@register_rule
class TensorVariance(_TensorRule):
    """Fires when a tensor's variance exceeds ``max_threshold`` or is below ``min_threshold``."""

    advice = "the tensor's spread is out of range: check initialisation, normalisation and lr"

    def __init__(
        self,
        *,
        collection_names: str | list[str] | None = None,
        tensor_regex: str | None = None,
        max_threshold: float | None = None,
        min_threshold: float | None = None,
    ) -> None:
        require(
            collection_names is not None or tensor_regex is not None,
            "tensor_variance needs collection_names or tensor_regex",
        )
        require(
            max_threshold is not None or min_threshold is not None,
            "tensor_variance needs max_threshold or min_threshold",
        )
        self.collection_names = collection_names
        self.tensor_regex = tensor_regex
        self.max_threshold = max_threshold
        self.min_threshold = min_threshold

    def reductions(self) -> tuple[str, ...]:
        return ("variance",)

    def check(self, record: Record) -> list[Finding]:
        colls = as_collections(self.collection_names)
        for name, value in select(record, colls, self.tensor_regex, "variance"):
            if not isinstance(value, float):
                continue
            if self.max_threshold is not None and value > self.max_threshold:
                return [self.finding(record, name, value, f"variance of {name} is {value:.3g} "
                                     f"> {self.max_threshold:g}")]  # fmt: skip
            if self.min_threshold is not None and value < self.min_threshold:
                return [self.finding(record, name, value, f"variance of {name} is {value:.3g} "
                                     f"< {self.min_threshold:g}")]  # fmt: skip
        return []


@register_rule
class ClassImbalance(Rule):
    """Every ``samples`` training labels: class count ratio and per-class misprediction."""

    advice = (
        "classes are imbalanced or some are mostly mispredicted: rebalance the split, "
        "oversample rare classes or weight the loss"
    )
    state_attrs = ("matrix",)

    def __init__(
        self,
        *,
        threshold_imbalance: float = 10.0,
        threshold_misprediction: float = 0.7,
        samples: int = 500,
        argmax: bool = False,
        labels_regex: str = ".*labels",
        predictions_regex: str = ".*predictions",
    ) -> None:
        require(samples >= 1, f"samples must be >= 1, got {samples}")
        self.threshold_imbalance = threshold_imbalance
        self.threshold_misprediction = threshold_misprediction
        self.samples = samples
        # breedclf always saves predicted class indices (the argmax of the logits).
        self.argmax = argmax
        self.labels_regex = labels_regex
        self.predictions_regex = predictions_regex
        self.matrix: list[list[float]] = []

    def needs(self) -> list[Need]:
        return [Need("labels", ("confusion",))]

    def check(self, record: Record) -> list[Finding]:
        part = _confusion(record) if record.mode == "train" else None
        if part is None:
            return []
        self.matrix = _add(self.matrix, part)
        counts = [sum(row) for row in self.matrix]
        if sum(counts) < self.samples:
            return []
        matrix, self.matrix = self.matrix, []
        seen = [c for c in counts if c > 0]
        found = []
        ratio = max(seen) / min(seen)
        if ratio > self.threshold_imbalance:
            found.append(
                self.finding(
                    record, "labels", ratio,
                    f"the most frequent class has {ratio:.1f}x the samples of the rarest "
                    f"(threshold {self.threshold_imbalance:g}) in the last {sum(counts):.0f} "
                    "labels",
                )
            )  # fmt: skip
        for i, row in enumerate(matrix):
            if counts[i] and 1 - row[i] / counts[i] > self.threshold_misprediction:
                wrong = 1 - row[i] / counts[i]
                found.append(
                    self.finding(
                        record, "predictions", wrong,
                        f"class {i} is mispredicted {wrong:.0%} of the time (threshold "
                        f"{self.threshold_misprediction:.0%})",
                    )
                )  # fmt: skip
                break
        return found


@register_rule
class CheckInputImages(Rule):
    """After ``threshold_samples`` images: |mean| of a channel of the inputs > threshold_mean."""

    advice = (
        "inputs are not normalised: subtract the mean and divide by the std the weights "
        "expect (breedclf's transforms do; check custom datasets and transforms)"
    )
    state_attrs = ("sums", "images")

    def __init__(
        self,
        *,
        threshold_mean: float = 0.2,
        threshold_samples: int = 500,
        regex: str = ".*inputs",
        channel: int = 1,
    ) -> None:
        self.threshold_mean = threshold_mean
        self.threshold_samples = threshold_samples
        self.regex = regex
        self.channel = channel
        self.sums: list[float] = []
        self.images = 0.0

    def needs(self) -> list[Need]:
        return [Need("inputs", (f"channel_mean({self.channel})", "count"), ("train",), self.regex)]

    def check(self, record: Record) -> list[Finding]:
        values = record.tensors.get("inputs", {})
        means, count = values.get(f"channel_mean({self.channel})"), values.get("count")
        if not isinstance(means, list) or not isinstance(count, float):
            return []
        self.sums = [
            a + m * count for a, m in zip(self.sums or [0.0] * len(means), means, strict=True)
        ]
        self.images += count
        if self.images < self.threshold_samples:
            return []
        mean = [s / self.images for s in self.sums]
        self.sums, self.images = [], 0.0
        worst = max(range(len(mean)), key=lambda c: abs(mean[c]))
        if abs(mean[worst]) <= self.threshold_mean:
            return []
        return [
            self.finding(
                record, "inputs", mean[worst],
                f"channel {worst} of the input images has mean {mean[worst]:.3f} (|mean| > "
                f"{self.threshold_mean:g})",
            )
        ]  # fmt: skip


@register_rule
class Confusion(Rule):
    """On each validation pass: diagonal ratio < ``min_diag`` or off-diagonal > ``max_off_diag``."""

    advice = (
        "some classes are confused with each other: look at eval-valid.json's confusion "
        "matrix, check those classes' labels, train longer or add data"
    )

    def __init__(
        self,
        *,
        category_no: int | None = None,
        labels_collection: str = "labels",
        predictions_collection: str = "predictions",
        min_diag: float = 0.9,
        max_off_diag: float = 0.1,
    ) -> None:
        self.category_no = category_no
        self.labels_collection = labels_collection
        self.predictions_collection = predictions_collection
        self.min_diag = min_diag
        self.max_off_diag = max_off_diag

    def needs(self) -> list[Need]:
        return [Need("labels", ("confusion",), ("eval",))]

    def check(self, record: Record) -> list[Finding]:
        matrix = _confusion(record) if record.mode == "eval" else None
        if matrix is None:
            return []
        n = min(len(matrix), self.category_no or len(matrix))
        for i in range(n):
            total = sum(matrix[i])
            if not total:
                continue
            if matrix[i][i] / total < self.min_diag:
                return [self.finding(record, "labels", matrix[i][i] / total,
                        f"only {matrix[i][i] / total:.0%} of class {i} is predicted as class {i} "
                        f"(min_diag {self.min_diag:g})")]  # fmt: skip
            for j in range(n):
                if j != i and matrix[i][j] / total > self.max_off_diag:
                    return [self.finding(record, "labels", matrix[i][j] / total,
                            f"{matrix[i][j] / total:.0%} of class {i} is predicted as class {j} "
                            f"(max_off_diag {self.max_off_diag:g})")]  # fmt: skip
        return []


@register_rule
class StalledTrainingRule(Rule):
    """Fires when no new record was saved for ``threshold`` seconds.

    Two ways, as SageMaker's rule watches the tensor files' timestamps while the job runs:

    * live, from the debugger's watchdog thread, *while* nothing arrives (a hung data loader or
      a deadlock produce no record to check): a finding of mode ``live`` at the last saved
      step, acted on at once (``stop_training`` ends training as soon as a step completes);
    * on the next record, for the whole gap (the finding that offline re-evaluation of the
      saved trial reproduces).

    The time before the first record counts from the start of training (or of a resume), so a
    resumed run does not count the time it was down.
    """

    advice = (
        "training stalled: check the data loader (workers, remote storage), deadlocks, and "
        "the save interval"
    )
    state_attrs = ("last_time",)
    live = True

    def __init__(
        self,
        *,
        threshold: float = 1800.0,
        stop_training_on_fire: bool = False,
        training_job_name_prefix: str | None = None,
    ) -> None:
        require(threshold > 0, f"threshold must be > 0, got {threshold}")
        self.threshold = threshold
        self.stop_training_on_fire = stop_training_on_fire
        self.training_job_name_prefix = training_job_name_prefix
        self.last_time: float | None = None
        self._last: Record | None = None
        self._started: float | None = None
        self._alerted: float | None = None
        if stop_training_on_fire:
            self.action = "stop_training"

    def needs(self) -> list[Need]:
        return [Need("losses", ("mean",), ("train", "eval"))]

    def start(self, now: float) -> None:
        self._started = now

    def check(self, record: Record) -> list[Finding]:
        last, self.last_time, self._last = self.last_time, record.time, record
        if last is None or record.time - last <= self.threshold:
            return []
        gap = record.time - last
        return [
            self.finding(
                record, "time", gap,
                f"no new tensors for {gap:.1f} s (threshold {self.threshold:g} s)",
            )
        ]  # fmt: skip

    def watch(self, now: float) -> list[Finding]:
        known = [t for t in (self.last_time, self._started) if t is not None]
        if not known:
            return []
        since = max(known)
        gap = now - since
        if gap <= self.threshold or self._alerted == since:
            return []
        self._alerted = since  # one alert per stall
        last = self._last
        return [
            Finding(
                rule=self.label or self.rule_name,
                step=last.step if last else 0,
                mode="live",
                epoch=last.epoch if last else 0,
                global_step=last.global_step if last else 0,
                tensor="time",
                value=gap,
                message=(
                    f"no new tensors for {gap:.1f} s so far (threshold {self.threshold:g} s): "
                    "training looks stalled"
                ),
                advice=self.advice,
            )
        ]


# SageMaker's rule_configs builder names.
all_zero = AllZero
check_input_images = CheckInputImages
class_imbalance = ClassImbalance
confusion = Confusion
dead_relu = DeadRelu
exploding_tensor = ExplodingTensor
loss_not_decreasing = LossNotDecreasing
overfit = Overfit
overtraining = Overtraining
poor_weight_initialization = PoorWeightInitialization
saturated_activation = SaturatedActivation
stalled_training_rule = StalledTrainingRule
tensor_variance = TensorVariance
unchanged_tensor = UnchangedTensor
vanishing_gradient = VanishingGradient
weight_update_ratio = WeightUpdateRatio
