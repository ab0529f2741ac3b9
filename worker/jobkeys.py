"""Redis key layout of the job store (worker.jobstore); every key expires with its job,
`TAGGER_RESULT_TTL_S` after the job was created:

    tagger:job:{id}               hash    the job record; counters done/failed/skipped
    tagger:job:{id}:items         list    item i -> JSON {item_id, filename, url?, error?}
    tagger:job:{id}:input:{c}     hash    item index -> image bytes; deleted when chunk c is done
    tagger:job:{id}:results       hash    item index -> result item JSON (written once: HSETNX)
    tagger:job:{id}:done          list    a token pushed when the job ends (API waiters block)
    tagger:tenant:{t}:jobs        zset    job id scored by creation time (newest-first listing)
    tagger:idem:{t}:{sha256(k)}   string  Idempotency-Key k -> job id
    tagger:workers                zset    worker hostname scored by its last heartbeat

Items of chunk c are indices [c * chunk_size, (c + 1) * chunk_size): a task message carries only
(job_id, chunk). Results are a hash keyed by index, so a page is one HMGET and an export walks it
in index order, 1,000 at a time.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

PREFIX = "tagger"
ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")
HEARTBEAT_TTL_S = 30


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def items_key(job_id: str) -> str:
    return f"{job_key(job_id)}:items"


def input_key(job_id: str, chunk: int) -> str:
    return f"{job_key(job_id)}:input:{chunk}"


def results_key(job_id: str) -> str:
    return f"{job_key(job_id)}:results"


def done_key(job_id: str) -> str:
    return f"{job_key(job_id)}:done"


# Scripts that end a job announce it here too (its key, record and, for one item, its result:
# worker.jobscripts): an API process waits for many jobs on one subscription
# (api.completions) instead of one blocking BLMOVE per waiting request.
DONE_CHANNEL = f"{PREFIX}:jobs:done"


def tenant_jobs_key(tenant: str) -> str:
    return f"{PREFIX}:tenant:{tenant}:jobs"


def idempotency_key(tenant: str, key: str) -> str:
    return f"{PREFIX}:idem:{tenant}:{hashlib.sha256(key.encode()).hexdigest()}"


WORKERS_KEY = f"{PREFIX}:workers"
