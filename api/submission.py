"""Turning validated items into a queued job (blocking: runs in a threadpool)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, BinaryIO

from api.auth import Tenant
from api.deps import Services
from api.errors import ApiError
from api.jobwriter import JobEnded, JobWriter, WriteLimits
from api.uploads import Item
from store.jobs import JobSpec
from store.registry import ModelRegistry
from worker import names

MAX_IDEMPOTENCY_KEY_LENGTH = 255


def check_idempotency_key(key: str | None) -> str | None:
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ApiError(422, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH}"
                            " characters")
    return key


def fingerprint(options: dict[str, Any], uploads: Iterable[tuple[str, BinaryIO]]) -> str:
    """What identifies a request for its Idempotency-Key: its options and a digest of every
    uploaded part (field name, bytes), in order. Reads the (spooled) parts once, then rewinds
    them; only requests that send a key pay for it."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    for name, file in uploads:
        digest.update(b"\x00part\x00" + name.encode() + b"\x00")
        file.seek(0)
        while block := file.read(1 << 20):
            digest.update(block)
        file.seek(0)
    return digest.hexdigest()


def submit(services: Services, tenant: Tenant, items: Iterable[Item], *, kind: str,
           source: str, top_k: int = 3, review_threshold: float | None = None,
           callback_url: str | None = None, model: str | None = None,
           deadline_s: int | None = None, idempotency: str | None = None,
           request_fingerprint: str = "") -> tuple[dict[str, str], bool]:
    """Create the job and stream its items in; returns (job record, created).

    A repeated Idempotency-Key returns the tenant's earlier job (created=False) once it is
    complete, and reads none of the items; with a different request (its fingerprint) it is
    a 422. Anything that goes wrong half-way removes the job again. A bulk job stops (and is
    removed) the moment the tenant's queued items pass its quota (429) or the service's queued
    inputs pass the admission mark (503).
    """
    if model is not None and not ModelRegistry(services.store.r).exists(model):
        # A pinned version must exist now: it cannot appear later (names are never reused).
        raise ApiError(422, f"model: unknown model version {model!r}; see GET /v1/models")
    settings = services.settings
    if deadline_s is not None and deadline_s > settings.max_deadline_s:
        raise ApiError(422, f"deadline_s: at most {settings.max_deadline_s} seconds")
    single = kind == "classify"
    spec = JobSpec(
        tenant=tenant.name, kind=kind, source=source,
        queue=names.INTERACTIVE_QUEUE if single else names.BULK_QUEUE,
        chunk_size=1 if single else settings.chunk_size, top_k=top_k,
        review_threshold=review_threshold, callback_url=callback_url, model=model,
        deadline_s=deadline_s)
    quota = services.quota(tenant)
    limits = None
    if not single:
        assert services.admission is not None, "the app's lifespan has not run"
        limits = WriteLimits(quota.queued_items if quota else 2**62,
                             quota.queued_bytes if quota else 2**62,
                             services.admission.input_mark)
    writer = JobWriter(services.store, services.celery, spec, idempotency, limits,
                       request_fingerprint)
    new = writer.open()
    if not new.created:
        job = services.store.get_job(new.job_id)
        if job is not None and job.get("fingerprint", "") != request_fingerprint:
            raise ApiError(422, "this Idempotency-Key was used for a different request (other"
                                " options or files); use a new key", "idempotency_key_reused")
        if job is None or job["sealed"] != "1":
            # The first request with this key is still writing its job, or its API died
            # half-way: the reaper then ends that job and frees the key (upload_stall_s).
            raise ApiError(409, "a request with this Idempotency-Key is still in progress;"
                                " retry shortly", "idempotency_conflict",
                           headers={"Retry-After": str(round(settings.upload_stall_s))})
        return job, False
    try:
        for meta, data in items:
            writer.add(meta, data)
        job = writer.close()
    except JobEnded:
        # Cancelled while its upload was being written: what was written stays, as cancelled.
        job = services.store.get_job(new.job_id)
        if job is None:
            raise ApiError(409, "the job was removed while its upload was being written",
                           "job_finished") from None
        return job, True
    except BaseException:
        writer.abort()
        raise
    services.metrics.items.labels(kind).inc(writer.total)
    return job, True


def single_image_spec(tenant: Tenant, top_k: int, review_threshold: float | None) -> JobSpec:
    """POST /v1/classify's job: one item, interactive queue (api.batcher writes these)."""
    return JobSpec(tenant=tenant.name, kind="classify", source="file",
                   queue=names.INTERACTIVE_QUEUE, chunk_size=1, top_k=top_k,
                   review_threshold=review_threshold)
