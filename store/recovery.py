"""The reaper: finds the work nobody will finish and ends what must end, so every job ends
whatever dies (docs/DESIGN.md, "Reliability model").

One sweep, by whichever process holds the sweep lock this interval (every worker and API
process tries; one wins), in this order:

1. after a Redis restart (its run_id changed since the last sweep), every pending chunk of an
   active job that no live lease covers is queued again: the last second of writes before the
   crash (a task message, a result, an ack) may be gone, and a chunk run twice is harmless;
2. a chunk whose lease lapsed (its worker died, or lost Redis for a whole lease) is queued
   again, counting as an interruption towards giving it up (worker.chunks.MAX_ATTEMPTS);
3. a job past its deadline ends, its unprocessed items skipped;
4. an upload that stopped writing for `upload_stall_s` (its API died) ends `failed`, and its
   Idempotency-Key is freed for a retry;
5. a webhook still undelivered `webhook_grace_s` after it was last tried is sent again.

The store decides; the caller sends the tasks (store/ knows no Celery): see `Sweep`.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

import redis

from store.jobs import JobStore
from store.keys import (
    ACTIVE_JOBS_KEY,
    DEADLINES_KEY,
    LEASES_KEY,
    REAPER_LOCK_KEY,
    REDIS_RUN_ID_KEY,
    UPLOADING_KEY,
    WEBHOOK_OUTBOX_KEY,
    parse_lease_member,
    pending_key,
)

log = logging.getLogger(__name__)

WEBHOOK_GRACE_S = 60.0  # a webhook task gets this long before the outbox sends another


@dataclass(frozen=True)
class Resend:
    job_id: str
    chunk: int
    queue: str
    backlog: int = 0  # its tenant's queued items ahead of it: its priority, as on first send


@dataclass
class Sweep:
    """What one sweep found: chunks to queue again, webhooks to send, jobs it ended."""

    chunks: list[Resend] = field(default_factory=list)
    webhooks: list[str] = field(default_factory=list)  # job ids
    ended: list[tuple[str, str]] = field(default_factory=list)  # (job id, reason)
    restarted: bool = False  # Redis restarted since the last sweep


class Reaper:
    def __init__(self, store: JobStore, interval_s: float, upload_stall_s: float,
                 webhook_grace_s: float = WEBHOOK_GRACE_S) -> None:
        self.store = store
        self.r: redis.Redis = store.r
        self.interval_s = interval_s
        self.upload_stall_s = upload_stall_s
        self.webhook_grace_s = webhook_grace_s
        self.token = uuid.uuid4().hex

    def sweep(self, now: float | None = None) -> Sweep | None:
        """One sweep, or None when another process swept within this interval."""
        if not self.r.set(REAPER_LOCK_KEY, self.token, nx=True,
                          px=max(1, int(self.interval_s * 900))):
            return None
        now = now or time.time()
        found = Sweep()
        if self._redis_restarted():
            found.restarted = True
            found.chunks += self._reconcile()
        for member in self._due(LEASES_KEY, now):
            job_id, chunk = parse_lease_member(member)
            if again := self.store.requeue(job_id, chunk, interrupted=True):
                log.warning("chunk %s of job %s lost its worker; queued again", chunk, job_id)
                found.chunks.append(Resend(job_id, chunk, *again))
        for index, reason, cutoff in ((DEADLINES_KEY, "deadline", now),
                                      (UPLOADING_KEY, "upload interrupted",
                                       now - self.upload_stall_s)):
            for job_id in self._due(index, cutoff):
                outcome = self.store.end_early(job_id, reason)
                if outcome == 1:
                    log.warning("job %s ended: %s", job_id, reason)
                    found.ended.append((job_id, reason))
                    if self.r.zscore(WEBHOOK_OUTBOX_KEY, job_id) is not None:
                        found.webhooks.append(job_id)  # now, not after the grace
                elif outcome == -1:  # expired while it was listed
                    self.r.zrem(index, job_id)
        for job_id in self._due(WEBHOOK_OUTBOX_KEY, now - self.webhook_grace_s):
            if job_id in found.webhooks:
                continue
            self.store.webhook_due(job_id, now)  # the next resend, if this one fails too
            found.webhooks.append(job_id)
        return found

    def _due(self, index: str, until: float, limit: int = 1000) -> list[str]:
        return [m.decode() for m in self.r.zrangebyscore(index, "-inf", until, start=0,
                                                         num=limit)]

    def _redis_restarted(self) -> bool:
        """True when the run_id the last sweep recorded (kept in Redis, so in its append-only
        file) is not this server's. The very first sweep on a Redis only records it: a new
        deployment has lost nothing, and re-queueing its queued chunks would run them twice."""
        run_id = self.r.info("server")["run_id"]
        seen = self.r.set(REDIS_RUN_ID_KEY, run_id, get=True)
        return seen is not None and seen.decode() != run_id

    def _reconcile(self) -> list[Resend]:
        """Every pending chunk of every active job that no live lease covers."""
        jobs = [j.decode() for j in self.r.zrange(ACTIVE_JOBS_KEY, 0, -1)]
        with self.r.pipeline(transaction=False) as pipe:
            for job_id in jobs:
                pipe.smembers(pending_key(job_id))
            pending = pipe.execute()
        resend = []
        for job_id, chunks in zip(jobs, pending, strict=True):
            for chunk in sorted(int(c) for c in chunks):
                if again := self.store.requeue(job_id, chunk, interrupted=False):
                    resend.append(Resend(job_id, chunk, *again))
        if resend:
            log.warning("Redis restarted: %d pending chunk(s) queued again", len(resend))
        return resend
