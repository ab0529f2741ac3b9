"""Result items, the shape docs/DESIGN.md fixes for clients:

    {"index": 0, "item_id": "SKU-123", "filename": "a.jpg", "status": "ok", "label": "Sneaker",
     "label_index": 7, "confidence": 0.97, "top_k": [{"label": "Sneaker", "score": 0.97}, ...],
     "needs_review": false, "model_version": "v2", "route": "photo", "error": null}

Built here as plain dicts (stored as JSON in Redis, one per item index): the workers write
them, and the API builds the `skipped` items of an ended job (cancelled, past its deadline,
its upload interrupted) from the same code: a job that ended takes no more results, so every
item without one was skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

# The job counter each item status adds to (store.jobs counts them as results are written).
COUNTERS = {"ok": "done", "error": "failed", "skipped": "skipped"}
RESULT_FIELDS = ("index", "item_id", "filename", "status", "label", "label_index", "confidence",
                 "top_k", "needs_review", "model_version", "route", "error")


class ScoredLabelLike(Protocol):
    label: str
    score: float


class PredictionLike(Protocol):
    """core.predictor.Prediction, without importing it (and torch) here."""

    label: str
    label_index: int
    confidence: float
    top_k: list[ScoredLabelLike]


def _base(index: int, meta: dict[str, Any], status: str) -> dict[str, Any]:
    return {"index": index, "item_id": meta.get("item_id"), "filename": meta.get("filename"),
            "status": status, "label": None, "label_index": None, "confidence": None,
            "top_k": [], "needs_review": False, "model_version": None, "route": None,
            "error": None}


def ok_result(index: int, meta: dict[str, Any], pred: PredictionLike,
              review_threshold: float | None, model_version: str) -> dict[str, Any]:
    item = _base(index, meta, "ok")
    item.update(
        label=pred.label, label_index=pred.label_index, confidence=round(pred.confidence, 6),
        top_k=[{"label": s.label, "score": round(s.score, 6)} for s in pred.top_k],
        needs_review=review_threshold is not None and pred.confidence < review_threshold,
        model_version=model_version,
        # Which model of a routed pair tagged it: "photo" or "fashion-mnist" ("single": one).
        route=getattr(pred, "route", "single"),
    )
    return item


def error_result(index: int, meta: dict[str, Any], message: str,
                 model_version: str | None) -> dict[str, Any]:
    item = _base(index, meta, "error")
    item.update(error=message, model_version=model_version)
    return item


# Why the items of a job that ended early were skipped: "<reason>: <explanation>".
SKIP_REASONS = {
    "cancelled": "cancelled: the job was cancelled before this item was processed",
    "deadline": "deadline: the job's deadline passed before this item was processed",
    "upload interrupted": "upload interrupted: the upload stopped before the job was complete",
}


def skipped_result(index: int, meta: dict[str, Any], end_reason: str) -> dict[str, Any]:
    item = _base(index, meta, "skipped")
    item["error"] = SKIP_REASONS.get(end_reason, f"{end_reason}: not processed")
    return item


def job_summary(job: dict[str, str]) -> dict[str, Any]:
    """A job as clients see it (GET /v1/jobs/{id}, the webhook body), from its Redis record."""
    total, done, failed = (int(job.get(k) or 0) for k in ("total", "done", "failed"))
    # An ended job takes no more results: whatever has none was skipped.
    ended = job["status"] in ("succeeded", "failed", "cancelled")
    skipped = total - done - failed if ended else int(job.get("skipped") or 0)
    threshold = job.get("review_threshold")
    return {
        "id": job["id"], "kind": job["kind"], "source": job["source"], "status": job["status"],
        "progress": {"total": total, "done": done, "failed": failed, "skipped": max(0, skipped)},
        "created_at": job["created_at"], "started_at": job["started_at"] or None,
        "finished_at": job["finished_at"] or None,
        "model_version": job["model_version"] or None, "model": job["model"] or None,
        "top_k": int(job["top_k"]),
        "review_threshold": float(threshold) if threshold else None,
        "deadline_at": (datetime.fromtimestamp(int(job["deadline_at"]), UTC).isoformat()
                        if job.get("deadline_at") else None),
        "end_reason": job.get("end_reason") or None,
        "results_url": f"/v1/jobs/{job['id']}/results",
    }
