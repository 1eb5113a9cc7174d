from __future__ import annotations

import math
import re

import torch

from breedclf.training import METRIC_LINE_REGEX, ClassificationMetrics, format_metrics_line


def test_metrics_line_is_stable_and_regex_readable() -> None:
    line = format_metrics_line("valid", {"loss": 0.51234, "acc": 1e-5, "top5": math.nan}, epoch=3)
    assert line == "epoch=3 split=valid loss=5.123400e-01 acc=1.000000e-05 top5=nan"
    acc = re.search(METRIC_LINE_REGEX.format(split="valid", metric="acc"), line)
    top5 = re.search(METRIC_LINE_REGEX.format(split="valid", metric="top5"), line)
    assert acc is not None
    assert float(acc.group(1)) == 1e-5
    assert top5 is not None
    assert top5.group(1) == "nan"
    test_line = format_metrics_line("test", {"acc": 0.9})
    assert re.search(METRIC_LINE_REGEX.format(split="valid", metric="acc"), test_line) is None


def test_classification_metrics_by_hand() -> None:
    metrics = ClassificationMetrics(num_classes=6, device=torch.device("cpu"))
    logits = torch.tensor(
        [
            [9.0, 1, 0, 0, 0, 0],  # true 0, predicted 0
            [0.0, 9, 8, 0, 0, 0],  # true 2, predicted 1 (2 is in the top 5)
            [0.0, 1, 2, 3, 4, 9],  # true 0, predicted 5 (0 is not in the top 5)
        ]
    )
    targets = torch.tensor([0, 2, 0])
    metrics.update(logits, targets, torch.tensor(0.5))
    out = metrics.compute(full=True)
    assert out["count"] == 3
    assert out["acc"] == 1 / 3
    assert out["top5"] == 2 / 3
    assert out["loss"] == 0.5
    assert out["per_class_acc"][0] == 0.5
    assert out["per_class_acc"][2] == 0.0
    assert out["per_class_acc"][1] is None
    assert out["confusion"][0][0] == 1
    assert out["confusion"][0][5] == 1
    assert out["confusion"][2][1] == 1


def test_model_selection_breaks_accuracy_ties_by_loss() -> None:
    from breedclf.training.callbacks._monitor import selection_key

    confident = selection_key({"acc": 1.0, "loss": 0.06}, "valid_acc")
    unsure = selection_key({"acc": 1.0, "loss": 0.13}, "valid_acc")
    worse = selection_key({"acc": 0.98, "loss": 0.01}, "valid_acc")
    assert confident > unsure > worse
    by_loss = selection_key({"acc": 0.5, "loss": 0.2}, "valid_loss")
    assert by_loss > selection_key({"acc": 0.9, "loss": 0.3}, "valid_loss")
