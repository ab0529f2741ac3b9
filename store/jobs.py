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

from store import scripts
from store.keys import (
    ACTIVE_MODEL_KEY,
    DONE_CHANNEL,
    METRICS_JOBS_ACTIVE_KEY,
    METRICS_JOBS_KEY,
    done_key,
    idempotency_key,
    input_key,
    items_key,
    job_key,
    results_key,
    tenant_jobs_key,
)
from store.records import decode_hash, now_iso
from store.results import COUNTERS

ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")
# Every script that changes a job's state also counts the transition for /metrics.
_COUNTS = (METRICS_JOBS_KEY, METRICS_JOBS_ACTIVE_KEY)


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


@dataclass(frozen=True)
class NewJob:
    job_id: str
    created: bool  # False: an earlier job with the same Idempotency-Key
    expire_at: int  # unix time at which every key of the job expires
    record: dict[str, Any]  # the job hash as created (written by create_job or add_chunk)


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
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.r = client  # binary client: inputs are raw image bytes
        self.ttl_s = ttl_s
        finishing = ("count_transition", "announce_end", "finish_job")
        self._record = scripts.register(client, "record_results", finishing)
        self._seal = scripts.register(client, "seal_job", finishing)
        self._start = scripts.register(client, "start_chunk", ("count_transition",))
        self._cancel = scripts.register(client, "cancel_job",
                                        ("count_transition", "announce_end"))
        self._discard = scripts.register(client, "discard_job", ("count_transition",))
        self._set_field = scripts.register(client, "set_job_field")

    # -- creating a job (API) -------------------------------------------------------------

    def create_job(self, spec: JobSpec, idempotency: str | None = None,
                   write: bool = True) -> NewJob:
        """Allocate a queued job and claim its Idempotency-Key (SET NX: of two concurrent
        submissions with one key only one creates a job).

        With a key this tenant already used, returns the earlier job's id, created=False, and
        writes nothing. With write=False the record is only built: the first add_chunk writes
        it, in the same round trip as the first items.
        """
        job_id = uuid.uuid4().hex
        now = time.time()
        expire_at = int(now) + self.ttl_s
        if idempotency is not None:
            idem = idempotency_key(spec.tenant, idempotency)
            if not self.r.set(idem, job_id, nx=True, exat=expire_at):
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
            "idempotency_key": idempotency or "", "_created": now,
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
        pipe.hincrby(METRICS_JOBS_KEY, "queued", 1)
        pipe.hincrby(METRICS_JOBS_ACTIVE_KEY, "queued", 1)

    def add_chunk(self, job_id: str, chunk: int, metas: Sequence[dict[str, Any]],
                  inputs: dict[int, bytes], expire_at: int,
                  record: dict[str, Any] | None = None) -> None:
        """Append one chunk's item metadata (in index order) and its image bytes, and with the
        job's first chunk its `record` too: one round trip (MULTI: a record never appears
        without its first items). Chunk k holds items k*chunk_size onwards; add them in order.
        """
        with self.r.pipeline() as pipe:
            self._queue_chunk(pipe, job_id, chunk, metas, inputs, expire_at, record)
            pipe.execute()

    def add_single_jobs(self, jobs: Sequence[tuple[dict[str, Any], dict[str, Any], bytes]]
                        ) -> None:
        """Several complete one-item jobs, each (record, item metadata, image bytes), in one
        round trip: how concurrent POST /v1/classify requests are written together."""
        with self.r.pipeline() as pipe:
            for record, meta, data in jobs:
                self._queue_chunk(pipe, record["id"], 0, [meta], {0: data}, record["expire_at"],
                                  record)
            pipe.execute()

    def _queue_chunk(self, pipe: redis.client.Pipeline, job_id: str, chunk: int,
                     metas: Sequence[dict[str, Any]], inputs: dict[int, bytes], expire_at: int,
                     record: dict[str, Any] | None) -> None:
        if record is not None:
            self._queue_record(pipe, record)
        pipe.rpush(items_key(job_id), *[json.dumps(m) for m in metas])
        pipe.expireat(items_key(job_id), expire_at)
        if inputs:
            pipe.hset(input_key(job_id, chunk), mapping=inputs)
            pipe.expireat(input_key(job_id, chunk), expire_at)

    def seal(self, job_id: str, total: int, chunks: int) -> bool:
        """All items are written; True if that finished the job (workers were faster)."""
        keys = [job_key(job_id), done_key(job_id), *_COUNTS]
        return self._seal(keys=keys, args=[total, chunks, now_iso(), DONE_CHANNEL]) == 1

    def discard(self, job_id: str, tenant: str, chunks: int) -> None:
        """Remove a job that failed validation half-way (its queued chunks find nothing)."""
        keys = [job_key(job_id), items_key(job_id), results_key(job_id), done_key(job_id)]
        keys += [input_key(job_id, c) for c in range(chunks)]
        self._discard(keys=[*_COUNTS, tenant_jobs_key(tenant), *keys], args=[job_id])

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
        """-1 no such job, 0 already finished, 1 cancelled now (then the inputs are dropped)."""
        outcome = self._cancel(keys=[job_key(job_id), done_key(job_id), *_COUNTS],
                               args=[now_iso(), DONE_CHANNEL])
        if outcome == 1:
            chunks = int(self.r.hget(job_key(job_id), "chunks") or 0)
            if chunks:
                self.r.delete(*[input_key(job_id, c) for c in range(chunks)])
        return int(outcome)

    # -- processing (workers) ------------------------------------------------------------

    def start_chunks(self, chunks: Sequence[tuple[str, int | None]]) -> list[StartedChunk]:
        """For each (job_id, chunk), in one round trip: fix the job's model version (its pinned
        one, else the active one) if no chunk has yet, mark the job running, count this
        attempt (chunk None: not counted). A gone job's record is {}."""
        replies = scripts.run_scripts(self.r, [
            (self._start, [job_key(job_id), ACTIVE_MODEL_KEY, *_COUNTS],
             [now_iso(), f"attempts:{chunk}" if chunk is not None else ""])
            for job_id, chunk in chunks])
        return [StartedChunk(decode_hash(reply[1]), int(reply[0])) if reply
                else StartedChunk({}, 0) for reply in replies]

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

    def record_results(self, job_id: str, chunk: int | None,
                       results: Sequence[dict[str, Any]]) -> int:
        """Write results (each once), count them, drop the chunk's inputs, finish the job if
        complete: one atomic script. Returns 1 if this call finished the job, -1 if it is gone.
        """
        return self.record_many([(job_id, chunk, results)])[0]

    def record_many(self, chunks: Sequence[tuple[str, int | None, Sequence[dict[str, Any]]]]
                    ) -> list[int]:
        """record_results for several chunks in one round trip (one atomic script each)."""
        calls = []
        for job_id, chunk, results in chunks:
            args: list[Any] = [now_iso(), DONE_CHANNEL]
            for item in results:
                args += [item["index"], COUNTERS[item["status"]], json.dumps(item)]
            keys = [job_key(job_id), results_key(job_id),
                    input_key(job_id, chunk) if chunk is not None else "", done_key(job_id),
                    *_COUNTS]
            calls.append((self._record, keys, args))
        return [int(reply) for reply in scripts.run_scripts(self.r, calls)]

    def set_field(self, job_id: str, field: str, value: str) -> None:
        self._set_field(keys=[job_key(job_id)], args=[field, value])
