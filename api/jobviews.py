"""Reading jobs for responses: tenancy checks and the public shape."""

from __future__ import annotations

import json

from api.auth import Tenant
from api.errors import not_found
from api.schemas import JobPublic
from store.jobs import ACTIVE, TERMINAL, JobStore
from store.results import job_summary, skipped_result

MAX_WAIT_S = 30  # the longest `?wait=` a client may ask for (POST /v1/classify)


def visible(job: dict[str, str] | None, tenant: Tenant) -> dict[str, str]:
    """The job if it belongs to the caller; another tenant's job is "not found" (404)."""
    if not job or job.get("tenant") != tenant.name:
        raise not_found()
    return job


def job_or_404(store: JobStore, job_id: str, tenant: Tenant) -> dict[str, str]:
    return visible(store.get_job(job_id), tenant)


def public(job: dict[str, str]) -> JobPublic:
    return JobPublic.model_validate(job_summary(job))


def result_item(index: int, meta: dict, raw: bytes | None, job: dict[str, str]) -> dict | None:
    """A stored result, or the `skipped` item of an ended job (an ended job takes no more
    results: cancelled, past its deadline, its upload interrupted); None while the item is
    still pending."""
    if raw is not None:
        return json.loads(raw)
    if job["status"] in TERMINAL:
        return skipped_result(index, meta, job.get("end_reason") or "cancelled")
    return None


def is_active(job: dict[str, str]) -> bool:
    return job["status"] in ACTIVE
