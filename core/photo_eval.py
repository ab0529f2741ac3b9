"""Scoring served predictions on the real photos: overall, per class, per source, and the
calibration of their `confidence` (coverage table, reliability, review threshold).

Shared by `fashion-tagger evaluate --split real-photos-val` (in-process predictor) and
`python -m benchmarks photos` (the `fashion-tagger predict` command's output).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from core.calibration import coverage_table, reliability
from core.evaluation import compute_metrics
from core.photos import SOURCES, PhotoRecord, read_manifest, select


def photo_records(root: Path, split: str) -> list[PhotoRecord]:
    """Every source's photos of `split`, for evaluation."""
    return select(read_manifest(root), split, SOURCES, "evaluate")


def predict_photos(predictor, root: Path, records: Sequence[PhotoRecord], batch: int = 256):
    """The predictor's results (Prediction | ItemError) for each record's file bytes."""
    results = []
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        results += predictor.predict_images([(Path(root) / r.file).read_bytes() for r in chunk])
    return results


def score(records: Sequence[PhotoRecord], predicted: Sequence[int | None],
          confidence: Sequence[float | None], labels: Sequence[str],
          review_below: float | None = None, routes: Sequence[str] | None = None) -> dict:
    """Figures for predictions of `records`; an item without a prediction (None) counts as
    wrong, with confidence 0 (it is always flagged)."""
    targets = torch.tensor([r.label_index for r in records])
    pred = torch.tensor([-1 if p is None else int(p) for p in predicted])
    conf = torch.tensor([0.0 if c is None else float(c) for c in confidence], dtype=torch.float64)
    correct = pred == targets
    metrics = compute_metrics(targets, pred.clamp(min=0), list(labels))
    sources = [r.source for r in records]
    per_source = {s: float(correct[[i for i, x in enumerate(sources) if x == s]].double().mean())
                  for s in SOURCES if s in sources}
    per_class = {labels[c]: float(correct[targets == c].double().mean())
                 for c in range(len(labels)) if (targets == c).any()}
    bins, ece = reliability(conf, correct)
    out = {"count": len(records), "accuracy": float(correct.double().mean()),
           "errors": int((pred < 0).sum()), "per_class": per_class,
           "min_class": min(per_class.values()), "per_source": per_source,
           "per_source_count": dict(Counter(sources)), "confusion": metrics.confusion,
           "ece": ece, "reliability": [b.model_dump() for b in bins],
           "coverage": [r.model_dump() for r in coverage_table(conf, correct)]}
    if review_below is not None:
        kept = conf >= review_below
        out["review"] = {"review_below": review_below,
                         "unflagged_share": float(kept.double().mean()),
                         "unflagged_accuracy": float(correct[kept].double().mean())
                         if kept.any() else None}
    if routes is not None:
        out["routes"] = dict(Counter(routes))
    return out
