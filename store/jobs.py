"""The job store: jobs, their inputs and their results in Redis (key layout: store.keys).

The API creates jobs and reads them; workers start chunks, read their inputs and record their
results. Every state change that must be atomic is a Lua script (store/lua); everything else
is pipelined, one round trip per chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

from store import scripts
from store.keys import (
    ACTIVE_JOBS_KEY,
    ACTIVE_MODEL_KEY,
    DEADLINES_KEY,
    DONE_CHANNEL,
    INPUT_BYTES_FIELD,
    LEASES_KEY,
    METRICS_JOBS_ACTIVE_KEY,
    METRICS_JOBS_KEY,
    RESENDS_KEY,
    UPLOADING_KEY,
    USAGE_KEY,
    WEBHOOK_OUTBOX_KEY,
    done_key,
    idempotency_key,
    input_key,
    input_prefix,
    items_key,
    job_key,
    lease_member,
    pending_key,
    results_key,
    tenant_jobs_key,
    usage_field,
)
from store.records import decode_hash, now_iso
from store.results import COUNTERS
from store.scripts import ScriptCall

ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")
# The keys every job-state script gets after its own (store/lua/lib/job_context.lua): the
# metrics counters it keeps exact, the reaper's indexes, the webhook outbox, the leases, the
# usage counters (admission control and quotas).
SERVICE_KEYS = (METRICS_JOBS_KEY, METRICS_JOBS_ACTIVE_KEY, ACTIVE_JOBS_KEY, UPLOADING_KEY,
                DEADLINES_KEY, WEBHOOK_OUTBOX_KEY, LEASES_KEY, USAGE_KEY)
# An Idempotency-Key is claimed for this long before its job's record is written, so a key
# whose API died before writing anything frees itself; the record then extends it to the job's
# whole life.
CLAIM_TTL_S = 300
# A job never outlives its keys: one still active this long before it expires is ended by the
# reaper (as past a deadline), so the scripts that end jobs uncount everything it held.
EXPIRY_GUARD_S = 60


@dataclass(frozen=True)
class JobSpec:
    """What a client asked for; the API fills it in, the workers read it back from the hash."""

    tenant: str
    kind: str  # "classify" (one image, interactive queue) | "bulk"
    source: str  # "file" | "files" | "archive" | "manifest"
    queue: str
    chunk_size: int
    top_k: int = 3
    review_threshold: float | None = None
    callback_url: str | None = None
    model: str | None = None  # a pinned model version; None = the active one at start
    deadline_s: int | None = None  # the job ends by then, its unprocessed items skipped


@dataclass(frozen=True)
class NewJob:
    job_id: str
    created: bool  # False: an earlier job with the same Idempotency-Key
    expire_at: int  # unix time at which every key of the job expires
    record: dict[str, Any]  # the job hash as created (written by create_job or add_chunk)


@dataclass(frozen=True)
class ChunkWrite:
    """What writing (a piece of) a chunk found: whether the job took it (False: it has ended,
    e.g. cancelled while uploading, or is gone), and the usage counters right after."""

    written: bool
    tenant_queued_items: int = 0
    input_bytes: int = 0  # every tenant's
    tenant_input_bytes: int = 0


@dataclass(frozen=True)
class StartedChunk:
    """A chunk a worker may process: its job's record and this attempt's number (0 when the
    job needs a model version and none is registered yet: nothing was started)."""

    job: dict[str, str]
    attempt: int


@dataclass(frozen=True)
class ChunkInputs:
    metas: list[dict]  # the chunk's item metadata, in index order
    written: list[bytes | None]  # per item: its result if one is already stored (a re-run)
    images: dict[int, bytes]  # item index -> uploaded image bytes


class JobStore:
    """`ttl_s`: how long a bulk job is kept; `single_ttl_s`: a one-image job (default the
    same)."""

    def __init__(self, client: redis.Redis, ttl_s: int, single_ttl_s: int | None = None) -> None:
        self.r = client  # binary client: inputs are raw image bytes
        self.ttl_s = ttl_s
        self.single_ttl_s = single_ttl_s or ttl_s
        context = ("job_context",)
        self._add_chunk = scripts.register(client, "add_chunk", context)
        self._record = scripts.register(client, "record_results", context)
        self._seal = scripts.register(client, "seal_job", context)
        self._start = scripts.register(client, "start_chunk", context)
        self._cancel = scripts.register(client, "cancel_job", context)
        self._end_early = scripts.register(client, "end_job_early", context)
        self._discard = scripts.register(client, "discard_job", context)
        self._requeue = scripts.register(client, "requeue_chunk", context)
        self._set_field = scripts.register(client, "set_job_field")

    def _job_call(self, script: Script, job_id: str, keys: Sequence[str] = (),
                  args: Sequence[Any] = ()) -> ScriptCall:
        """A job-state script call in the layout of store/lua/lib/job_context.lua."""
        return (script,
                [job_key(job_id), results_key(job_id), done_key(job_id), pending_key(job_id),
                 *keys, *SERVICE_KEYS],
                [now_iso(), f"{time.time():.3f}", DONE_CHANNEL, input_prefix(job_id), *args])

    def _run(self, script: Script, job_id: str, keys: Sequence[str] = (),
             args: Sequence[Any] = ()) -> Any:
        return scripts.run_scripts(self.r, [self._job_call(script, job_id, keys, args)])[0]

    # -- creating a job (API) -------------------------------------------------------------

    def create_job(self, spec: JobSpec, idempotency: str | None = None,
                   write: bool = True, fingerprint: str = "") -> NewJob:
        """Allocate a queued job and claim its Idempotency-Key (SET NX: of two concurrent
        submissions with one key only one creates a job).

        With a key this tenant already used, returns the earlier job's id, created=False, and
        writes nothing; `fingerprint` (of the request) is kept in the record, so a repeat can be
        told apart from a different request that reuses the key. With write=False the record
        is only built: the first add_chunk writes it, in the same round trip as the first
        items.
        """
        job_id = uuid.uuid4().hex
        now = time.time()
        expire_at = int(now) + (self.single_ttl_s if spec.kind == "classify" else self.ttl_s)
        if idempotency is not None:
            idem = idempotency_key(spec.tenant, idempotency)
            if not self.r.set(idem, job_id, nx=True, ex=CLAIM_TTL_S):
                return NewJob((self.r.get(idem) or b"").decode(), False, 0, {})
        record = {
            "id": job_id, "tenant": spec.tenant, "kind": spec.kind, "source": spec.source,
            "queue": spec.queue, "status": "queued", "chunk_size": spec.chunk_size,
            "top_k": spec.top_k,
            "review_threshold": "" if spec.review_threshold is None else spec.review_threshold,
            "callback_url": spec.callback_url or "", "model": spec.model or "",
            "model_version": "", "total": 0, "chunks": 0, "sealed": 0, "done": 0, "failed": 0,
            "skipped": 0, "cancel_requested": 0, "created_at": now_iso(), "started_at": "",
            "finished_at": "", "expire_at": expire_at, "webhook": "",
            "idempotency_key": idempotency or "", "fingerprint": fingerprint,
            "end_reason": "", "queued": 0,
            "deadline_at": int(now) + spec.deadline_s if spec.deadline_s else "",
            "_created": now,
        }
        new = NewJob(job_id, True, expire_at, record)
        if write:
            with self.r.pipeline() as pipe:
                self._queue_record(pipe, record)
                pipe.execute()
        return new

    def _queue_record(self, pipe: redis.client.Pipeline, record: dict[str, Any]) -> None:
        job_id, created = record["id"], record["_created"]
        index = tenant_jobs_key(record["tenant"])
        pipe.hset(job_key(job_id), mapping={k: v for k, v in record.items() if k != "_created"})
        pipe.expireat(job_key(job_id), record["expire_at"])
        pipe.zadd(index, {job_id: created})
        pipe.zremrangebyscore(index, "-inf", created - self.ttl_s)  # jobs that have expired
        pipe.expire(index, self.ttl_s)
        pipe.zadd(ACTIVE_JOBS_KEY, {job_id: created})
        pipe.zadd(DEADLINES_KEY, {job_id: record["deadline_at"]
                                  or int(record["expire_at"]) - EXPIRY_GUARD_S})
        if record["kind"] == "bulk":
            pipe.hincrby(USAGE_KEY, usage_field(record["tenant"], "active_jobs"), 1)
        if record["idempotency_key"]:  # the claim now lasts as long as the job
            pipe.expireat(idempotency_key(record["tenant"], record["idempotency_key"]),
                          record["expire_at"])
        pipe.hincrby(METRICS_JOBS_KEY, "queued", 1)
        pipe.hincrby(METRICS_JOBS_ACTIVE_KEY, "queued", 1)

    def add_chunk(self, job_id: str, chunk: int, metas: Sequence[dict[str, Any]],
                  inputs: dict[int, bytes], expire_at: int,
                  record: dict[str, Any] | None = None) -> ChunkWrite:
        """Append (a piece of) one bulk chunk: its item metadata (in index order) and its image
        bytes, counted in the usage counters (script add_chunk.lua), and with the job's first
        piece its `record` too, in the same transaction (a record never appears without its
        first items). Chunk k holds items k*chunk_size onwards; add them in order. A chunk may
        be written in several pieces (bounded memory for large images); its task goes out
        after the last."""
        call = self._job_call(self._add_chunk, job_id,
                              keys=[items_key(job_id), input_key(job_id, chunk)],
                              args=[chunk, expire_at, len(metas),
                                    *[json.dumps(m) for m in metas],
                                    *[part for item in inputs.items() for part in item]])
        if record is None:
            reply = scripts.run_scripts(self.r, [call])[0]
        else:
            script, keys, args = call
            with self.r.pipeline() as pipe:  # MULTI; redis-py loads the script first
                self._queue_record(pipe, record)
                script(keys=keys, args=args, client=pipe)
                reply = pipe.execute()[-1]
        if int(reply[0]) != 1:
            return ChunkWrite(False)
        return ChunkWrite(True, int(reply[1]), int(reply[2]), int(reply[3]))

    def add_single_jobs(self, jobs: Sequence[tuple[dict[str, Any], dict[str, Any], bytes]]
                        ) -> None:
        """Several complete one-item jobs, each (record, item metadata, image bytes), in one
        round trip: how concurrent POST /v1/classify requests are written together. Each is
        active from the start, so it is counted here (the scripts that end it uncount it)."""
        with self.r.pipeline() as pipe:
            for record, meta, data in jobs:
                job_id = record["id"]
                self._queue_record(pipe, record | {"queued": 1, "inbytes:0": len(data)})
                pipe.rpush(items_key(job_id), json.dumps(meta))
                pipe.expireat(items_key(job_id), record["expire_at"])
                pipe.sadd(pending_key(job_id), 0)
                pipe.expireat(pending_key(job_id), record["expire_at"])
                pipe.hset(input_key(job_id, 0), 0, data)
                pipe.expireat(input_key(job_id, 0), record["expire_at"])
                pipe.hincrby(USAGE_KEY, usage_field(record["tenant"], "queued_items"), 1)
                pipe.hincrby(USAGE_KEY, usage_field(record["tenant"], "input_bytes"), len(data))
                pipe.hincrby(USAGE_KEY, INPUT_BYTES_FIELD, len(data))
            pipe.execute()

    def seal(self, job_id: str, total: int, chunks: int) -> bool:
        """All items are written; True if that finished the job (workers were faster)."""
        return self._run(self._seal, job_id, args=[total, chunks]) == 1

    def discard(self, job_id: str, tenant: str) -> None:
        """Remove a job that failed validation half-way (its queued chunks find nothing)."""
        self._run(self._discard, job_id, keys=[items_key(job_id), tenant_jobs_key(tenant)])

    def release_idempotency(self, tenant: str, key: str) -> None:
        self.r.delete(idempotency_key(tenant, key))

    # -- reading (API) --------------------------------------------------------------------

    def get_job(self, job_id: str) -> dict[str, str] | None:
        return decode_hash(self.r.hgetall(job_key(job_id))) or None

    def list_jobs(self, tenant: str, limit: int, before: float | None) -> list[dict[str, str]]:
        """The tenant's jobs, newest first, created strictly before `before` (a cursor)."""
        upper = f"({before!r}" if before is not None else "+inf"
        ids = self.r.zrevrangebyscore(tenant_jobs_key(tenant), upper, "-inf", start=0,
                                      num=limit, withscores=True)
        with self.r.pipeline(transaction=False) as pipe:
            for job_id, _ in ids:
                pipe.hgetall(job_key(job_id.decode()))
            records = pipe.execute()
        jobs = []
        for (_, score), raw in zip(ids, records, strict=True):
            if raw:  # expired jobs linger in the index until the next create prunes them
                jobs.append(decode_hash(raw) | {"_score": repr(score)})
        return jobs

    def page(self, job_id: str, start: int, stop: int) -> list[tuple[int, dict, bytes | None]]:
        """Items [start, stop): (index, item metadata, result JSON or None if not written)."""
        if stop <= start:
            return []
        indices = list(range(start, stop))
        with self.r.pipeline(transaction=False) as pipe:
            pipe.lrange(items_key(job_id), start, stop - 1)
            pipe.hmget(results_key(job_id), indices)
            metas, results = pipe.execute()
        return [(i, json.loads(m), res) for i, m, res in zip(indices, metas, results, strict=False)]

    def iter_results(self, job_id: str, total: int, batch: int = 1000
                     ) -> Iterator[tuple[int, dict, bytes | None]]:
        for start in range(0, total, batch):
            yield from self.page(job_id, start, min(total, start + batch))

    def cancel(self, job_id: str) -> int:
        """-1 no such job, 0 already ended, 1 cancelled now (its unprocessed inputs dropped)."""
        return int(self._run(self._cancel, job_id))

    def end_early(self, job_id: str, reason: str) -> int:
        """End an active job before all its items are done: reason "deadline" or "upload
        interrupted" (which also frees its Idempotency-Key). 1 ended now, 0 had ended, -1 gone.
        """
        job = self.get_job(job_id)
        idem = (idempotency_key(job["tenant"], job["idempotency_key"])
                if job and job.get("idempotency_key") and reason == "upload interrupted" else "")
        return int(self._run(self._end_early, job_id, keys=[idem], args=[reason]))

    # -- processing (workers) ------------------------------------------------------------

    def start_chunks(self, chunks: Sequence[tuple[str, int]], lease_s: float,
                     interrupted: bool = False) -> list[StartedChunk]:
        """For each (job_id, chunk), in one round trip: fix the job's model version (its pinned
        one, else the active one) if no chunk has yet, mark the job running, and lease the
        chunk to the caller for `lease_s` (renew_leases while working). `interrupted`: this
        delivery follows one whose worker died, which counts towards giving the chunk up.
        A gone job's record is {}."""
        until = time.time() + lease_s
        replies = scripts.run_scripts(self.r, [
            self._job_call(self._start, job_id, keys=[ACTIVE_MODEL_KEY],
                           args=[chunk, f"{until:.3f}", int(interrupted)])
            for job_id, chunk in chunks])
        return [StartedChunk(decode_hash(reply[1]), int(reply[0])) if reply
                else StartedChunk({}, 0) for reply in replies]

    def renew_leases(self, chunks: Sequence[tuple[str, int]], lease_s: float) -> None:
        """Extend the leases of chunks this process is working on (never re-creates one the
        reaper or a finished record removed)."""
        until = time.time() + lease_s
        self.r.zadd(LEASES_KEY, {lease_member(job_id, chunk): until for job_id, chunk in chunks},
                    xx=True)

    def requeue(self, job_id: str, chunk: int, interrupted: bool) -> tuple[str, int] | None:
        """(the queue to send the chunk to again, its tenant's queued items ahead of it: its
        priority), or None: it is not pending in an active job, or a worker holds an
        unexpired lease on it. `interrupted` counts towards giving it up (its holder died).
        A chunk to send again stays in RESENDS_KEY until `resent` confirms its send."""
        reply = self._run(self._requeue, job_id, keys=[RESENDS_KEY],
                          args=[chunk, job_id, int(interrupted)])
        return (reply[0].decode(), int(reply[1])) if reply else None

    def resent(self, chunks: Sequence[tuple[str, int]]) -> None:
        """Confirm that these chunks, which `requeue` returned, were sent."""
        if chunks:
            self.r.zrem(RESENDS_KEY, *(lease_member(job_id, chunk) for job_id, chunk in chunks))

    def chunks_inputs(self, chunks: Sequence[tuple[str, int, int]]) -> list[ChunkInputs]:
        """For each (job_id, chunk, chunk_size), in one round trip: the chunk's item metadata,
        the results already written (a re-run chunk skips those) and its image bytes."""
        with self.r.pipeline(transaction=False) as pipe:
            for job_id, chunk, chunk_size in chunks:
                start = chunk * chunk_size
                pipe.lrange(items_key(job_id), start, start + chunk_size - 1)
                pipe.hmget(results_key(job_id), list(range(start, start + chunk_size)))
                pipe.hgetall(input_key(job_id, chunk))
            replies = pipe.execute()
        out = []
        for n in range(len(chunks)):
            metas, written, inputs = replies[3 * n:3 * n + 3]
            out.append(ChunkInputs([json.loads(m) for m in metas], written[:len(metas)],
                                   {int(k): v for k, v in inputs.items()}))
        return out

    def record_results(self, job_id: str, chunk: int, results: Sequence[dict[str, Any]]) -> int:
        """Release the chunk (lease, inputs), write its results (each once) and count them, and
        finish the job if complete: one atomic script. A job that already ended takes no more
        results. Returns 1 if this call finished the job, -1 if it is gone, else 0."""
        return self.record_many([(job_id, chunk, results)])[0]

    def record_many(self, chunks: Sequence[tuple[str, int, Sequence[dict[str, Any]]]]
                    ) -> list[int]:
        """record_results for several chunks in one round trip (one atomic script each)."""
        calls = []
        for job_id, chunk, results in chunks:
            args: list[Any] = [chunk]
            for item in results:
                args += [item["index"], COUNTERS[item["status"]], json.dumps(item)]
            calls.append(self._job_call(self._record, job_id, args=args))
        return [int(reply) for reply in scripts.run_scripts(self.r, calls)]

    def set_field(self, job_id: str, field: str, value: str) -> None:
        self._set_field(keys=[job_key(job_id)], args=[field, value])

    # -- webhooks: the outbox (store/lua/lib/job_context.lua adds an ended job to it) ----------

    def webhook_due(self, job_id: str, at: float) -> None:
        """The job's webhook is being tried; if it is still undelivered at `at`, the reaper
        sends it again."""
        self.r.zadd(WEBHOOK_OUTBOX_KEY, {job_id: at}, xx=True)

    def webhook_settled(self, job_id: str, outcome: str) -> None:
        """Delivered (or given up, with why): out of the outbox for good."""
        self.r.zrem(WEBHOOK_OUTBOX_KEY, job_id)
        self.set_field(job_id, "webhook", outcome)
