"""The reaper: finds the work nobody will finish and ends what must end, so every job ends
whatever dies (docs/DESIGN.md, "Reliability model").

One sweep, by whichever process holds the sweep lock this interval (every worker and API
process tries; one wins), in this order:

1. after a Redis restart (its run_id changed since the last sweep), every pending chunk of an
   active job that no live lease covers is queued again: the last second of writes before the
   crash (a task message, a result, an ack) may be gone, and a chunk run twice is harmless;
2. a chunk this reaper decided to send again a lease ago whose send was never confirmed (the
   broker was away, or the sweeping process died) is decided again;
3. a chunk whose lease lapsed (its worker died, or lost Redis for a whole lease) is queued
   again, counting as an interruption towards giving it up (worker.chunks.MAX_ATTEMPTS);
   and a chunk delivered to a worker more than a lease ago that never started it (the broker
   still holds it unacknowledged, and no lease covers it: a worker that died with it
   reserved) is queued again once per delivery;
4. a job past its deadline ends, its unprocessed items skipped;
5. an upload that stopped writing for `upload_stall_s` (its API died) ends `failed`, and its
   Idempotency-Key is freed for a retry;
6. a webhook still undelivered `webhook_grace_s` after it was last tried is sent again.

The store decides; the caller sends the tasks (store/ knows no Celery) and confirms the chunks
it sent: see `Reaper.sweep_and_send`. Until confirmed, a decision is kept in Redis
(`store.keys.RESENDS_KEY`, written by the script that decides), so no decision is lost with a
failed send.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from store.jobs import JobStore
from store.keys import (
    ACTIVE_JOBS_KEY,
    DEADLINES_KEY,
    KOMBU_UNACKED_INDEX_KEY,
    KOMBU_UNACKED_KEY,
    LEASES_KEY,
    REAPER_LOCK_KEY,
    REDIS_RUN_ID_KEY,
    RESENDS_KEY,
    RESENT_DELIVERIES_KEY,
    UPLOADING_KEY,
    WEBHOOK_OUTBOX_KEY,
    parse_lease_member,
    pending_key,
)

log = logging.getLogger(__name__)

WEBHOOK_GRACE_S = 60.0  # a webhook task gets this long before the outbox sends another
RESENT_MEMORY_S = 24 * 3600  # resent deliveries are remembered this long

# A task's name and arguments -> the (job id, chunk) pairs it processes (worker.names knows the
# task names; the store does not).
ChunksOf = Callable[[str, list], list[tuple[str, int]]]


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
    _queued: set[tuple[str, int]] = field(default_factory=set, repr=False, compare=False)


class Reaper:
    def __init__(self, store: JobStore, interval_s: float, upload_stall_s: float,
                 lease_s: float, chunks_of: ChunksOf,
                 webhook_grace_s: float = WEBHOOK_GRACE_S) -> None:
        self.store = store
        self.r: redis.Redis = store.r
        self.interval_s = interval_s
        self.upload_stall_s = upload_stall_s
        self.lease_s = lease_s
        self.chunks_of = chunks_of
        self.webhook_grace_s = webhook_grace_s
        self.token = uuid.uuid4().hex

    def sweep_and_send(self, send: Callable[[Sweep], None], now: float | None = None
                       ) -> Sweep | None:
        """One sweep, its findings queued by `send`, then the chunks sent confirmed; None when
        another process swept within this interval. A `send` that raises confirms nothing: a
        sweep a lease later decides those chunks again."""
        found = self.sweep(now)
        if found is not None:
            send(found)
            self.store.resent([(again.job_id, again.chunk) for again in found.chunks])
        return found

    def sweep(self, now: float | None = None) -> Sweep | None:
        """One sweep, or None when another process swept within this interval."""
        if not self.r.set(REAPER_LOCK_KEY, self.token, nx=True,
                          px=max(1, int(self.interval_s * 900))):
            return None
        now = now or time.time()
        found = Sweep()
        run_id = self.r.info("server")["run_id"]
        seen = self.r.get(REDIS_RUN_ID_KEY)
        # The very first sweep on a Redis only records it: a new deployment has lost nothing,
        # and queueing its queued chunks again would run them twice.
        if seen is not None and seen.decode() != run_id:
            found.restarted = True
            self._reconcile(found)
        if seen is None or found.restarted:  # recorded once reconciled: a sweep cut short redoes it
            self.r.set(REDIS_RUN_ID_KEY, run_id)
        for member in self._due(RESENDS_KEY, now - self.lease_s):
            job_id, chunk = parse_lease_member(member)
            if self._queue_again(found, job_id, chunk, interrupted=False):
                log.warning("chunk %s of job %s was to be queued again a lease ago and its send"
                            " was never confirmed; queued again", chunk, job_id)
        unstarted = self._stale_deliveries(now)
        for member in self._due(LEASES_KEY, now):
            job_id, chunk = parse_lease_member(member)
            if self._queue_again(found, job_id, chunk, interrupted=True):
                log.warning("chunk %s of job %s lost its worker; queued again", chunk, job_id)
                self._resent(unstarted.pop((job_id, chunk), []), now)
        for (job_id, chunk), tags in unstarted.items():
            # Delivered a lease ago and not running: unless a lease covers it (it did start,
            # and runs), its worker died holding it. Not an interruption: it never ran.
            if self._queue_again(found, job_id, chunk, interrupted=False):
                log.warning("chunk %s of job %s was delivered to a worker that never started"
                            " it; queued again", chunk, job_id)
            self._resent(tags, now)
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

    def _queue_again(self, found: Sweep, job_id: str, chunk: int, interrupted: bool) -> bool:
        """Adds the chunk to this sweep's resends when the store decides it must be sent again
        (once per sweep, whichever step finds it first)."""
        if (job_id, chunk) in found._queued:
            return False
        if again := self.store.requeue(job_id, chunk, interrupted=interrupted):
            found.chunks.append(Resend(job_id, chunk, *again))
            found._queued.add((job_id, chunk))
            return True
        return False

    def _stale_deliveries(self, now: float) -> dict[tuple[str, int], list[str]]:
        """(job id, chunk) -> the broker's unacknowledged deliveries of it older than a lease
        that this reaper has not sent again yet."""
        tags = self._due(KOMBU_UNACKED_INDEX_KEY, now - self.lease_s)
        if not tags:
            return {}
        with self.r.pipeline(transaction=False) as pipe:
            pipe.hmget(KOMBU_UNACKED_KEY, tags)
            pipe.zmscore(RESENT_DELIVERIES_KEY, tags)
            payloads, resent = pipe.execute()
        stale: dict[tuple[str, int], list[str]] = {}
        for tag, raw, done in zip(tags, payloads, resent, strict=True):
            if raw is None or done is not None:
                continue
            for ref in self._chunks_in(raw):
                stale.setdefault(ref, []).append(tag)
        return stale

    def _chunks_in(self, raw: bytes) -> list[tuple[str, int]]:
        """The chunks a kombu message carries ([payload, exchange, routing key]; the payload's
        body is base64 JSON [args, kwargs, embed]); [] for anything else."""
        try:
            payload = json.loads(raw)[0]
            args = json.loads(base64.b64decode(payload["body"]))[0]
            return self.chunks_of(payload["headers"]["task"], args)
        except (ValueError, KeyError, IndexError, TypeError):
            return []

    def _resent(self, tags: list[str], now: float) -> None:
        if tags:
            self.r.zadd(RESENT_DELIVERIES_KEY, dict.fromkeys(tags, now))
            self.r.zremrangebyscore(RESENT_DELIVERIES_KEY, "-inf", now - RESENT_MEMORY_S)

    def _due(self, index: str, until: float, limit: int = 1000) -> list[str]:
        return [m.decode() for m in self.r.zrangebyscore(index, "-inf", until, start=0,
                                                         num=limit)]

    def _reconcile(self, found: Sweep) -> None:
        """Every pending chunk of every active job that no live lease covers."""
        jobs = [j.decode() for j in self.r.zrange(ACTIVE_JOBS_KEY, 0, -1)]
        with self.r.pipeline(transaction=False) as pipe:
            for job_id in jobs:
                pipe.smembers(pending_key(job_id))
            pending = pipe.execute()
        queued = 0
        for job_id, chunks in zip(jobs, pending, strict=True):
            for chunk in sorted(int(c) for c in chunks):
                queued += self._queue_again(found, job_id, chunk, interrupted=False)
        log.warning("Redis restarted: %d pending chunk(s) queued again", queued)
