"""SageMaker Debugger's rules as breedclf's own engine: same names, parameters and defaults.

Rules run live during training (the :class:`Debugger` callback) and offline on a saved trial
(:func:`evaluate_trial`, ``breedclf debug RUN_DIR --rule 'overfit(patience=3)'``). See
``docs/debugger.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from breedclf._lazy import lazy_exports

if TYPE_CHECKING:
    from breedclf.debugger._callback import (
        Debugger,
        resolve_save_interval,
    )
    from breedclf.debugger._config import (
        create_debugger,
    )
    from breedclf.debugger._engine import (
        CollectionPlan,
        RuleEngine,
        evaluate_trial,
        plan_collections,
        read_findings,
        read_statuses,
    )
    from breedclf.debugger._rule import (
        ISSUES_FOUND,
        NO_ISSUES_FOUND,
        RULES,
        Action,
        Finding,
        Need,
        Rule,
        create_rule,
        list_rules,
        parse_rule,
        register_rule,
    )
    from breedclf.debugger._rules import (
        AllZero,
        CheckInputImages,
        ClassImbalance,
        Confusion,
        DeadRelu,
        ExplodingTensor,
        LossNotDecreasing,
        Overfit,
        Overtraining,
        PoorWeightInitialization,
        SaturatedActivation,
        StalledTrainingRule,
        TensorVariance,
        UnchangedTensor,
        VanishingGradient,
        WeightUpdateRatio,
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
    from breedclf.debugger._smdebug import (
        SmdebugHook,
        find_hook_config,
        smdebug_available,
    )
    from breedclf.debugger._trial import (
        Record,
        Trial,
        load_trial,
    )

_EXPORTS = {
    "Debugger": "breedclf.debugger._callback",
    "resolve_save_interval": "breedclf.debugger._callback",
    "CollectionPlan": "breedclf.debugger._engine",
    "RuleEngine": "breedclf.debugger._engine",
    "evaluate_trial": "breedclf.debugger._engine",
    "plan_collections": "breedclf.debugger._engine",
    "read_findings": "breedclf.debugger._engine",
    "read_statuses": "breedclf.debugger._engine",
    "ISSUES_FOUND": "breedclf.debugger._rule",
    "NO_ISSUES_FOUND": "breedclf.debugger._rule",
    "RULES": "breedclf.debugger._rule",
    "Action": "breedclf.debugger._rule",
    "Finding": "breedclf.debugger._rule",
    "Need": "breedclf.debugger._rule",
    "Rule": "breedclf.debugger._rule",
    "create_rule": "breedclf.debugger._rule",
    "list_rules": "breedclf.debugger._rule",
    "parse_rule": "breedclf.debugger._rule",
    "register_rule": "breedclf.debugger._rule",
    "AllZero": "breedclf.debugger._rules",
    "CheckInputImages": "breedclf.debugger._rules",
    "ClassImbalance": "breedclf.debugger._rules",
    "Confusion": "breedclf.debugger._rules",
    "DeadRelu": "breedclf.debugger._rules",
    "ExplodingTensor": "breedclf.debugger._rules",
    "LossNotDecreasing": "breedclf.debugger._rules",
    "Overfit": "breedclf.debugger._rules",
    "Overtraining": "breedclf.debugger._rules",
    "PoorWeightInitialization": "breedclf.debugger._rules",
    "SaturatedActivation": "breedclf.debugger._rules",
    "StalledTrainingRule": "breedclf.debugger._rules",
    "TensorVariance": "breedclf.debugger._rules",
    "UnchangedTensor": "breedclf.debugger._rules",
    "VanishingGradient": "breedclf.debugger._rules",
    "WeightUpdateRatio": "breedclf.debugger._rules",
    "all_zero": "breedclf.debugger._rules",
    "check_input_images": "breedclf.debugger._rules",
    "class_imbalance": "breedclf.debugger._rules",
    "confusion": "breedclf.debugger._rules",
    "dead_relu": "breedclf.debugger._rules",
    "exploding_tensor": "breedclf.debugger._rules",
    "loss_not_decreasing": "breedclf.debugger._rules",
    "overfit": "breedclf.debugger._rules",
    "overtraining": "breedclf.debugger._rules",
    "poor_weight_initialization": "breedclf.debugger._rules",
    "saturated_activation": "breedclf.debugger._rules",
    "stalled_training_rule": "breedclf.debugger._rules",
    "tensor_variance": "breedclf.debugger._rules",
    "unchanged_tensor": "breedclf.debugger._rules",
    "vanishing_gradient": "breedclf.debugger._rules",
    "weight_update_ratio": "breedclf.debugger._rules",
    "SmdebugHook": "breedclf.debugger._smdebug",
    "find_hook_config": "breedclf.debugger._smdebug",
    "smdebug_available": "breedclf.debugger._smdebug",
    "Record": "breedclf.debugger._trial",
    "Trial": "breedclf.debugger._trial",
    "load_trial": "breedclf.debugger._trial",
    "create_debugger": "breedclf.debugger._config",
}

__all__ = [
    "ISSUES_FOUND",
    "NO_ISSUES_FOUND",
    "RULES",
    "Action",
    "AllZero",
    "CheckInputImages",
    "ClassImbalance",
    "CollectionPlan",
    "Confusion",
    "DeadRelu",
    "Debugger",
    "ExplodingTensor",
    "Finding",
    "LossNotDecreasing",
    "Need",
    "Overfit",
    "Overtraining",
    "PoorWeightInitialization",
    "Record",
    "Rule",
    "RuleEngine",
    "SaturatedActivation",
    "SmdebugHook",
    "StalledTrainingRule",
    "TensorVariance",
    "Trial",
    "UnchangedTensor",
    "VanishingGradient",
    "WeightUpdateRatio",
    "all_zero",
    "check_input_images",
    "class_imbalance",
    "confusion",
    "create_debugger",
    "create_rule",
    "dead_relu",
    "evaluate_trial",
    "exploding_tensor",
    "find_hook_config",
    "list_rules",
    "load_trial",
    "loss_not_decreasing",
    "overfit",
    "overtraining",
    "parse_rule",
    "plan_collections",
    "poor_weight_initialization",
    "read_findings",
    "read_statuses",
    "register_rule",
    "resolve_save_interval",
    "saturated_activation",
    "smdebug_available",
    "stalled_training_rule",
    "tensor_variance",
    "unchanged_tensor",
    "vanishing_gradient",
    "weight_update_ratio",
]


def _load_rules() -> None:
    importlib.import_module("breedclf.debugger._rules")  # registers the built-in rules


# Names load on first use, so the CLI can register this command without importing torch.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, before=_load_rules)
