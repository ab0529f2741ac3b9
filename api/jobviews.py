"""Reading jobs for responses: tenancy checks, the public shape, async waits on completion."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from api.auth import Tenant
from api.errors import not_found
from api.schemas import JobPublic
from worker.jobkeys import ACTIVE, done_key, items_key, job_key, results_key
from worker.jobstore import JobStore, decode_hash
from worker.results import job_summary, skipped_result

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
    """A stored result, or the `skipped` item of a cancelled job no worker reached; None while
    the item is still pending."""
    if raw is not None:
        return json.loads(raw)
    if job["status"] == "cancelled":
        return skipped_result(index, meta)
    return None


async def wait_until_done(aredis: aioredis.Redis, job_id: str, timeout_s: float) -> bool:
    """Block (without blocking the event loop) until the job ends or `timeout_s` passes.

    The worker that finishes a job pushes a token on its `done` list; BLMOVE of that list onto
    itself wakes every waiter at once and leaves the token for later ones.
    """
    key = done_key(job_id)
    return await aredis.blmove(key, key, timeout_s, "RIGHT", "LEFT") is not None


async def read_job_async(aredis: aioredis.Redis, job_id: str
                         ) -> tuple[dict[str, str], bytes | None, dict | None]:
    """The job record, item 0's stored result and item 0's metadata (single-image jobs)."""
    async with aredis.pipeline(transaction=False) as pipe:
        pipe.hgetall(job_key(job_id))
        pipe.hget(results_key(job_id), "0")
        pipe.lindex(items_key(job_id), 0)
        raw_job, raw_result, raw_meta = await pipe.execute()
    return decode_hash(raw_job), raw_result, json.loads(raw_meta) if raw_meta else None


def is_active(job: dict[str, str]) -> bool:
    return job["status"] in ACTIVE
