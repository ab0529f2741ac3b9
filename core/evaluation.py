"""Classification metrics: accuracy, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

import torch
from pydantic import BaseModel


class ClassMetrics(BaseModel):
    label: str
    precision: float
    recall: float
    f1: float
    support: int


class Metrics(BaseModel):
    accuracy: float
    count: int
    per_class: list[ClassMetrics]
    confusion: list[list[int]]  # confusion[true][predicted]


def confusion_matrix(targets: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """`(classes, classes)` int64 counts, rows = true class, columns = predicted class."""
    flat = targets.long() * classes + predicted.long()
    return torch.bincount(flat, minlength=classes * classes).view(classes, classes)


def compute_metrics(
    targets: torch.Tensor, predicted: torch.Tensor, labels: tuple[str, ...] | list[str]
) -> Metrics:
    cm = confusion_matrix(targets, predicted, len(labels))
    tp = cm.diag().double()
    predicted_count = cm.sum(0).double()
    support = cm.sum(1)
    precision = torch.where(predicted_count > 0, tp / predicted_count.clamp(min=1), 0.0)
    recall = torch.where(support > 0, tp / support.clamp(min=1).double(), 0.0)
    f1 = torch.where(precision + recall > 0,
                     2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)
    per_class = [
        ClassMetrics(label=label, precision=precision[i].item(), recall=recall[i].item(),
                     f1=f1[i].item(), support=int(support[i]))
        for i, label in enumerate(labels)
    ]
    count = len(targets)
    accuracy = tp.sum().item() / count if count else 0.0
    return Metrics(accuracy=accuracy, count=count, per_class=per_class, confusion=cm.tolist())
