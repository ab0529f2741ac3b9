"""Calibration: a temperature that makes `confidence` a probability, the review threshold
that keeps the unflagged results accurate, and the tables that show both.

Everything is fitted on validation logits. Because the same validation set then reports the
figures, `cross_fit` also gives an honest estimate: fit on one half, measure on the other.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel

# Temperatures searched (log-spaced): a grid is deterministic and the NLL is smooth in T.
T_GRID = torch.logspace(math.log10(0.25), math.log10(8.0), 601, dtype=torch.float64)
THRESHOLDS = [round(0.01 * i, 2) for i in range(101)]


class CoverageRow(BaseModel):
    threshold: float  # results with confidence >= threshold are not flagged for review
    coverage: float  # share of items not flagged
    accuracy: float | None  # accuracy of the items not flagged (None when none are)
    kept: int


class ReliabilityBin(BaseModel):
    low: float
    high: float
    count: int
    confidence: float | None  # mean confidence in the bin
    accuracy: float | None


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The T minimising the NLL of softmax(logits / T) on (N, C) logits."""
    logits, targets = logits.double(), targets.long()
    nll = torch.stack([torch.nn.functional.cross_entropy(logits / t, targets) for t in T_GRID])
    return round(float(T_GRID[int(nll.argmin())]), 4)


def confidences(logits: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Top probability and predicted class per row of (N, C) logits."""
    conf, predicted = (logits.double() / temperature).softmax(1).max(1)
    return conf, predicted


def coverage_table(conf: torch.Tensor, correct: torch.Tensor,
                   thresholds: list[float] = THRESHOLDS) -> list[CoverageRow]:
    rows = []
    for t in thresholds:
        kept = conf >= t
        n = int(kept.sum())
        rows.append(CoverageRow(threshold=t, coverage=n / max(len(conf), 1),
                                accuracy=float(correct[kept].double().mean()) if n else None,
                                kept=n))
    return rows


def choose_threshold(conf: torch.Tensor, correct: torch.Tensor, min_accuracy: float = 0.95,
                     thresholds: list[float] = THRESHOLDS) -> float | None:
    """The lowest threshold whose unflagged items are at least `min_accuracy` correct (the
    most coverage that keeps the accuracy); None when no threshold reaches it."""
    for row in coverage_table(conf, correct, thresholds):
        if row.accuracy is not None and row.accuracy >= min_accuracy:
            return row.threshold
    return None


def reliability(conf: torch.Tensor, correct: torch.Tensor, bins: int = 10
                ) -> tuple[list[ReliabilityBin], float]:
    """Equal-width confidence bins and the expected calibration error (ECE)."""
    out, ece = [], 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = (conf >= low) & ((conf < high) if b < bins - 1 else (conf <= high))
        n = int(inside.sum())
        mean_conf = float(conf[inside].mean()) if n else None
        acc = float(correct[inside].double().mean()) if n else None
        if n:
            ece += n / len(conf) * abs(mean_conf - acc)
        out.append(ReliabilityBin(low=low, high=high, count=n, confidence=mean_conf,
                                  accuracy=acc))
    return out, ece


def cross_fit(logits: torch.Tensor, targets: torch.Tensor, min_accuracy: float = 0.95,
              folds: int = 2, seed: int = 0) -> dict:
    """Fit T and the threshold on all folds but one, measure on that one, for each fold; the
    pooled held-out figures estimate what a fresh set of photos would show."""
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
    parts = [order[i::folds] for i in range(folds)]
    kept = correct_kept = 0
    per_fold = []
    for i, held in enumerate(parts):
        fit = torch.cat([p for j, p in enumerate(parts) if j != i])
        t = fit_temperature(logits[fit], targets[fit])
        conf_fit, pred_fit = confidences(logits[fit], t)
        threshold = choose_threshold(conf_fit, pred_fit == targets[fit], min_accuracy)
        conf, pred = confidences(logits[held], t)
        ok = pred == targets[held]
        mask = conf >= (threshold if threshold is not None else 1.01)
        kept += int(mask.sum())
        correct_kept += int(ok[mask].sum())
        per_fold.append({"temperature": t, "threshold": threshold, "items": len(held),
                         "coverage": float(mask.double().mean()),
                         "accuracy_unflagged": float(ok[mask].double().mean())
                         if mask.any() else None})
    return {"folds": per_fold, "coverage": kept / len(targets),
            "accuracy_unflagged": correct_kept / kept if kept else None}
