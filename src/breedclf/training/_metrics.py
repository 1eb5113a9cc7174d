"""Classification metrics accumulated on the device, synchronised once per epoch."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["METRIC_LINE_REGEX", "ClassificationMetrics", "format_metrics_line"]

#: Regex a SageMaker tuner (or anyone) can use on the log line of a split's metric; it matches
#: plain, exponent and ``nan``/``inf`` numbers. Example: ``METRIC_LINE_REGEX.format(split="valid",
#: metric="acc")``.
METRIC_LINE_REGEX = r"split={split} .*?\b{metric}=([-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|nan|inf))"


class ClassificationMetrics:
    """Loss, top-1, top-5, per-class accuracy and the confusion matrix of one pass.

    Counts stay on the device during the pass (no per-batch host sync). Loss sums accumulate in
    float64, except on Apple MPS, which has no float64 (float32 there).

    Args:
        num_classes: Width of the logits.
        device: Where the counts live (the logits' device).
        unsmoothed: Also report ``loss_unsmoothed`` (training, where ``loss`` is the label-smoothed
            objective); each :meth:`update` then passes it.
    """

    def __init__(self, num_classes: int, device: torch.device, *, unsmoothed: bool = False) -> None:
        self.num_classes = num_classes
        self.device = device
        self._sum_dtype = torch.float32 if device.type == "mps" else torch.float64
        self.loss_sum = torch.zeros((), dtype=self._sum_dtype, device=device)
        self.loss_unsmoothed_sum = torch.zeros_like(self.loss_sum) if unsmoothed else None
        self.correct1 = torch.zeros((), dtype=torch.long, device=device)
        self.correct5 = torch.zeros((), dtype=torch.long, device=device)
        self.confusion = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
        self.count = 0

    @torch.no_grad()
    def update(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        loss: torch.Tensor,
        *,
        loss_unsmoothed: torch.Tensor | None = None,
    ) -> None:
        """Add a batch: ``loss`` is the batch-mean loss.

        Args:
            loss_unsmoothed: The batch-mean loss without label smoothing (``loss`` if omitted);
                counted when the metrics were created with ``unsmoothed=True``.
        """
        n = int(targets.shape[0])
        self.count += n
        self.loss_sum += loss.detach().to(self._sum_dtype) * n
        if self.loss_unsmoothed_sum is not None:
            raw = loss if loss_unsmoothed is None else loss_unsmoothed
            self.loss_unsmoothed_sum += raw.detach().to(self._sum_dtype) * n
        k = min(5, self.num_classes)
        top = logits.detach().topk(k, dim=1).indices
        hits = top == targets.unsqueeze(1)
        self.correct1 += hits[:, 0].sum()
        self.correct5 += hits.any(dim=1).sum()
        self.confusion += torch.bincount(
            targets * self.num_classes + top[:, 0], minlength=self.num_classes**2
        )

    @torch.no_grad()
    def all_reduce(self) -> None:
        """Sum the counts of every data-parallel rank into each (one collective, every rank).

        Each rank saw its own share of the split, so the sums (never averages) of all ranks
        are the metrics of the whole split; :meth:`compute` then gives the same result on
        every rank. Exact: the counts travel as float64, which holds integers up to 2**53.
        """
        from breedclf.training._distributed import all_reduce_sum

        unsmoothed = self.loss_unsmoothed_sum
        packed = torch.cat(
            [
                torch.stack(
                    [
                        self.loss_sum.to(torch.float64),
                        (unsmoothed if unsmoothed is not None else self.loss_sum).to(torch.float64),
                        self.correct1.to(torch.float64),
                        self.correct5.to(torch.float64),
                        torch.tensor(float(self.count), dtype=torch.float64, device=self.device),
                    ]
                ),
                self.confusion.to(torch.float64),
            ]
        )
        all_reduce_sum(packed)
        self.loss_sum = packed[0].to(self._sum_dtype)
        if unsmoothed is not None:
            self.loss_unsmoothed_sum = packed[1].to(self._sum_dtype)
        self.correct1 = packed[2].round().long()
        self.correct5 = packed[3].round().long()
        self.count = int(packed[4].round().item())
        self.confusion = packed[5:].round().long()

    def compute(self, *, full: bool = False) -> dict[str, Any]:
        """Epoch metrics: ``loss``, ``acc``, ``top5``, ``count`` (and ``loss_unsmoothed``).

        Args:
            full: Also return ``per_class_acc`` and ``confusion`` (rows: true class, columns:
                predicted class).
        """
        n = max(1, self.count)
        out: dict[str, Any] = {"loss": float(self.loss_sum.item()) / n if self.count else math.nan}
        if self.loss_unsmoothed_sum is not None:
            unsmoothed = float(self.loss_unsmoothed_sum.item()) / n
            out["loss_unsmoothed"] = unsmoothed if self.count else math.nan
        out["acc"] = int(self.correct1.item()) / n if self.count else math.nan
        out["top5"] = int(self.correct5.item()) / n if self.count else math.nan
        out["count"] = self.count
        if full:
            matrix = self.confusion.view(self.num_classes, self.num_classes).cpu()
            support = matrix.sum(dim=1)
            per_class = [
                float(matrix[i, i]) / float(support[i]) if support[i] > 0 else None
                for i in range(self.num_classes)
            ]
            out["per_class_acc"] = per_class
            out["confusion"] = matrix.tolist()
        return out


def format_metrics_line(split: str, metrics: dict[str, Any], *, epoch: int | None = None) -> str:
    """The stable, documented one-line form of a split's metrics.

    ``epoch=3 split=valid loss=5.123400e-01 acc=8.100000e-01 top5=9.700000e-01``. Numbers use
    exponent notation (``nan``/``inf`` when not finite), so any regex of the form
    :data:`METRIC_LINE_REGEX` reads them; only the ``valid`` split is ever used for tuning.
    """
    parts = [] if epoch is None else [f"epoch={epoch}"]
    parts.append(f"split={split}")
    for key in ("loss", "acc", "top5"):
        if key in metrics:
            value = float(metrics[key])
            parts.append(f"{key}={value:.6e}" if math.isfinite(value) else f"{key}={value}")
    return " ".join(parts)
