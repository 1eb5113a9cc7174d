"""The rule interface, findings, and the rule registry."""

from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from breedclf._registry import Registry
from breedclf.debugger._trial import Mode, Record, Value, collection_of
from breedclf.errors import ConfigurationError

if TYPE_CHECKING:
    from breedclf.training import Trainer

__all__ = [
    "ISSUES_FOUND",
    "NO_ISSUES_FOUND",
    "RULES",
    "Action",
    "Finding",
    "Need",
    "Rule",
    "create_rule",
    "list_rules",
    "parse_rule",
    "register_rule",
]

ISSUES_FOUND = "IssuesFound"
NO_ISSUES_FOUND = "NoIssuesFound"


@dataclass(frozen=True)
class Finding:
    """One rule evaluation that found an issue (a line of ``debugger/findings.jsonl``).

    Attributes:
        rule: The rule's label (its builder name, e.g. ``overfit``).
        step: The saved step evaluated (optimizer step; the epoch for ``eval`` records).
        mode: ``train`` or ``eval``.
        epoch: The epoch of that step.
        global_step: Optimizer steps taken at that point.
        tensor: The tensor that triggered it.
        value: The value that triggered it.
        message: One line saying what was found.
        advice: What to try.
    """

    rule: str
    step: int
    mode: str
    epoch: int
    global_step: int
    tensor: str
    value: float
    message: str
    advice: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (non-finite values as strings)."""
        data = asdict(self)
        data["value"] = self.value if math.isfinite(self.value) else str(self.value)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        """Read :meth:`to_json` back."""
        fields = {k: data[k] for k in cls.__dataclass_fields__}
        fields["value"] = float(fields["value"])
        return cls(**fields)


Action = Literal["log", "stop_training"] | Callable[[Finding, "Trainer"], None]


@dataclass(frozen=True)
class Need:
    """Tensors a rule reads: a collection, the reductions of it, the modes, an optional regex.

    ``collection="*"`` means every collection another rule (or ``save_tensors``) collects.
    ``first_steps`` asks for every one of the first N optimizer steps to be saved;
    ``only_first`` says the rule reads these reductions in those steps only, so later steps
    do not compute them (PoorWeightInitialization's percentiles and activation variances).
    """

    collection: str
    reductions: tuple[str, ...]
    modes: tuple[Mode, ...] = ("train",)
    regex: str | None = None
    first_steps: int = 0
    only_first: bool = False


class Rule:
    """Base class of debugger rules: reads saved records, reports :class:`Finding` s.

    A rule declares what it reads (:meth:`needs`) and checks one :class:`Record` at a time
    (:meth:`check`), in step order, live during training or offline on a saved trial: both feed
    it the same records, so both find the same issues. Keep everything a rule remembers in plain
    attributes listed by :meth:`state_dict` (it is checkpointed and restored on resume).

    Subclass, give ``__init__`` keyword-only parameters stored under the same names, and
    register it with :func:`register_rule`.
    """

    #: Registry name (snake case of the class name, as SageMaker's ``rule_configs``).
    rule_name: ClassVar[str] = ""
    #: What to try when it fires.
    advice: ClassVar[str] = ""
    #: Attributes saved in checkpoints besides the issue count.
    state_attrs: ClassVar[tuple[str, ...]] = ()

    action: Action | None = None
    issues: int = 0
    label: str = ""

    def params(self) -> dict[str, Any]:
        """The rule's parameters and their values."""
        names = [
            name
            for name, p in inspect.signature(type(self).__init__).parameters.items()
            if p.kind is p.KEYWORD_ONLY
        ]
        return {name: getattr(self, name) for name in names}

    def on_fire(self, action: Action) -> Rule:
        """Set what happens when it fires (``"log"``, ``"stop_training"`` or a callable)."""
        self.action = action
        return self

    def needs(self) -> list[Need]:
        """The tensors this rule reads."""
        raise NotImplementedError

    def check(self, record: Record) -> list[Finding]:
        """Evaluate one record (called for every record, train and eval, in order)."""
        raise NotImplementedError

    #: The :class:`~breedclf.debugger.Debugger` also calls :meth:`watch` from a watchdog thread
    #: while training runs (for rules that must fire when *no* record arrives).
    live: ClassVar[bool] = False

    def start(self, now: float) -> None:
        """Training (re)starts at wall-clock time ``now``: a hook for :attr:`live` rules."""

    def watch(self, now: float) -> list[Finding]:
        """Check the state at wall-clock time ``now`` between records (only :attr:`live` rules).

        Called from the debugger's watchdog thread; it must only read the rule's state and
        return findings (the caller counts and acts on them).
        """
        return []

    def evaluate(self, record: Record) -> list[Finding]:
        """:meth:`check` a record and count its findings."""
        found = self.check(record)
        self.issues += len(found)
        return found

    @property
    def status(self) -> str:
        """``IssuesFound`` once any evaluation found an issue, else ``NoIssuesFound``."""
        return ISSUES_FOUND if self.issues else NO_ISSUES_FOUND

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the parameters (to match on resume) and the state."""
        return {
            "params": _plain(self.params()),
            "issues": self.issues,
            "state": {name: _plain(getattr(self, name)) for name in self.state_attrs},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.issues = int(state["issues"])
        for name in self.state_attrs:
            setattr(self, name, _unplain(state["state"][name], getattr(self, name)))

    # --------------------------------------------------------------------- helpers for rules

    def finding(self, record: Record, tensor: str, value: float, message: str) -> Finding:
        """A finding of this rule at ``record``."""
        return Finding(
            rule=self.label or self.rule_name,
            step=record.step,
            mode=record.mode,
            epoch=record.epoch,
            global_step=record.global_step,
            tensor=tensor,
            value=float(value),
            message=message,
            advice=self.advice,
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.rule_name}({args})"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _unplain(value: Any, current: Any) -> Any:
    if isinstance(current, tuple):
        return tuple(value)
    return value


def select(
    record: Record,
    collections: Collection | None,
    regex: str | None,
    reduction: str,
) -> Iterator[tuple[str, Value]]:
    """``(tensor name, value)`` of ``reduction`` for the tensors a rule inspects."""
    pattern = re.compile(regex) if regex else None
    for name, values in record.tensors.items():
        if reduction not in values:
            continue
        in_collection = collections is not None and collection_of(name) in collections
        in_regex = pattern is not None and pattern.match(name) is not None
        if (collections is None and pattern is None) or in_collection or in_regex:
            yield name, values[reduction]


Collection = tuple[str, ...]


def as_collections(value: str | list[str] | tuple[str, ...] | None) -> Collection | None:
    """Normalise a ``collection_names`` parameter (a name, comma-separated names, a list)."""
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


# ---------------------------------------------------------------------------------- registry

R = TypeVar("R", bound=type[Rule])

RULES: Registry[type[Rule]] = Registry("rule")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def register_rule(cls: R) -> R:
    """Register a :class:`Rule` subclass under the snake case of its class name.

    Example:
        >>> from breedclf.debugger import RULES, Need, Rule, register_rule
        >>> with RULES.scoped():
        ...     @register_rule
        ...     class LossAbove(Rule):
        ...         advice = "lower the learning rate"
        ...         def __init__(self, *, limit: float = 10.0) -> None:
        ...             self.limit = limit
        ...         def needs(self):
        ...             return [Need("losses", ("mean",))]
        ...         def check(self, record):
        ...             loss = record.tensors.get("loss", {}).get("mean")
        ...             if loss is None or loss <= self.limit:
        ...                 return []
        ...             return [self.finding(record, "loss", loss, f"loss {loss} > {self.limit}")]
        ...     LossAbove.rule_name
        'loss_above'
    """
    cls.rule_name = _snake(cls.__name__)
    RULES.add(cls.rule_name, cls)
    return cls


def _load_builtin_rules() -> None:
    # The built-in rules register themselves when their module is imported; the package's names
    # load lazily, so lookups make sure that happened.
    importlib.import_module("breedclf.debugger._rules")


def list_rules(pattern: str = "*") -> list[str]:
    """Registered rule names (``rule_configs`` style) matching a wildcard pattern."""
    _load_builtin_rules()
    return RULES.list(pattern)


def create_rule(name: str, params: Mapping[str, Any] | None = None) -> Rule:
    """Build a registered rule by name (``overfit`` or ``Overfit``) with keyword parameters.

    Raises:
        UnknownNameError: No such rule (close matches are listed).
        ConfigurationError: A parameter is unknown (the closest valid one is named) or invalid.
    """
    key = _snake(name) if any(c.isupper() for c in name) else name
    _load_builtin_rules()
    cls = RULES.get(key)
    params = dict(params or {})
    accepted = [
        p
        for p, spec in inspect.signature(cls.__init__).parameters.items()
        if spec.kind is spec.KEYWORD_ONLY
    ]
    check_params(f"rule {key!r}", params, accepted)
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"rule {key!r}: {exc}") from None


def check_params(what: str, params: Mapping[str, Any], accepted: list[str]) -> None:
    """Raise for a parameter not in ``accepted``, naming the closest valid one."""
    for param in params:
        if param not in accepted:
            close = difflib.get_close_matches(param, accepted, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigurationError(
                f"{what} has no parameter {param!r}; {hint}"
                f"valid parameters: {', '.join(accepted) or 'none'}"
            )


def parse_call(text: str, *, what: str, example: str) -> tuple[str, dict[str, Any]]:
    """``"name(a=1, b='x')"`` or ``"name"`` → ``("name", {"a": 1, "b": "x"})`` (literals only).

    Raises:
        ConfigurationError: Not of that form (the message shows ``example``).
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if isinstance(node, ast.Name):
        return node.id, {}
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
        raise ConfigurationError(
            f"cannot read the {what} {text!r}: write NAME or NAME(param=value, ...), e.g. {example}"
        )
    params: dict[str, Any] = {}
    for kw in node.keywords:
        try:
            params[str(kw.arg)] = ast.literal_eval(kw.value)
        except ValueError:
            raise ConfigurationError(
                f"{what} {text!r}: the value of {kw.arg} must be a literal (number, string, "
                "list, None)"
            ) from None
    return node.func.id, params


def parse_rule(text: str) -> Rule:
    """Build a rule from ``"overfit(patience=3)"`` (literal keyword arguments) or ``"overfit"``.

    Raises:
        ConfigurationError: Not of that form, or an unknown rule/parameter.
    """
    name, params = parse_call(text, what="rule", example="'overfit(patience=3)'")
    return create_rule(name, params)


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigurationError` with ``message`` unless ``condition``."""
    if not condition:
        raise ConfigurationError(message)
