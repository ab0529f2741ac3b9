"""Writing a job's items into the store chunk by chunk, and enqueueing each chunk as soon as it
is stored: workers start on the first chunk while the rest of an upload is still being read.

Bounded: the writer holds at most one chunk's item metadata and PIECE_BYTES of its image bytes
(a chunk of large images goes to Redis in pieces), and stops an upload the moment its tenant's
queued items pass their quota (429) or the inputs waiting in Redis pass the admission mark
(503): the caller then aborts the job, which uncounts everything it wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery

from api.errors import ApiError
from store.jobs import ChunkWrite, JobSpec, JobStore, NewJob
from worker import names

PIECE_BYTES = 32 * 1024 * 1024  # image bytes held before they go to Redis (one chunk's piece)
RETRY_AFTER_S = 30  # what a refused upload is told: queues drain in about that long


@dataclass(frozen=True)
class WriteLimits:
    """Checked after each piece written (the counters are the store's, exact)."""

    queued_items: int  # the tenant's quota of items written and not yet done
    queued_bytes: int  # ...and of their image bytes
    input_bytes: int  # every job's waiting image bytes: the admission high-water mark


class JobEnded(Exception):
    """The job ended (it was cancelled) or vanished while its upload was being written."""


class JobWriter:
    """Usage: `new = writer.open()`; if `new.created`: `add(...)` each item, then `close()`;
    on a failure half-way call `abort()` (the queued chunks then find no job and stop).

    A job of one chunk (a single image) costs one Redis round trip and one task message."""

    def __init__(self, store: JobStore, celery: Celery, spec: JobSpec,
                 idempotency: str | None = None, limits: WriteLimits | None = None,
                 fingerprint: str = "") -> None:
        self.store = store
        self.celery = celery
        self.spec = spec
        self.idempotency = idempotency
        self.limits = limits
        self.fingerprint = fingerprint  # the request's, kept for a repeated Idempotency-Key
        self.job: NewJob | None = None
        self.record: dict[str, str] = {}
        self.total = 0
        self.chunks = 0
        self._metas: list[dict[str, Any]] = []
        self._inputs: dict[int, bytes] = {}
        self._held = 0  # bytes in _inputs
        self._chunk_items = 0  # items of the current chunk, written pieces included
        self._record_written = False

    def open(self) -> NewJob:
        """Claim the job id (and Idempotency-Key); the record is written with the first chunk."""
        self.job = self.store.create_job(self.spec, self.idempotency, write=False,
                                         fingerprint=self.fingerprint)
        return self.job

    def add(self, meta: dict[str, Any], data: bytes | None) -> None:
        """One item: its metadata (item_id, filename, url or error) and its bytes, if any."""
        if data is not None:
            self._inputs[self.total] = data
            self._held += len(data)
        self._metas.append(meta)
        self.total += 1
        self._chunk_items += 1
        if self._chunk_items == self.spec.chunk_size:
            self._flush(last=False, complete=True)
        elif self._held >= PIECE_BYTES:
            self._flush(last=False, complete=False)

    def close(self) -> dict[str, str]:
        """Write what is left and seal the job; returns the job record as written."""
        assert self.job is not None
        if not self.total:
            raise ValueError("a job needs at least one item")
        if self.chunks == 0 and not self._record_written:
            self._flush(last=True, complete=True)  # the whole job in one round trip, sealed
            return self.record
        if self._chunk_items:
            self._flush(last=False, complete=True)
        if self.store.seal(self.job.job_id, self.total, self.chunks) and self.spec.callback_url:
            # The workers finished every chunk before sealing: none of them could finish the
            # job, so the completion webhook is ours to send.
            self.celery.send_task(names.SEND_WEBHOOK, args=[self.job.job_id])
        return self.store.get_job(self.job.job_id) or self.record

    def abort(self) -> None:
        assert self.job is not None
        self.store.discard(self.job.job_id, self.spec.tenant)
        if self.idempotency:
            self.store.release_idempotency(self.spec.tenant, self.idempotency)

    def _flush(self, last: bool, complete: bool) -> None:
        """Write the items held; `complete`: they end the current chunk, whose task goes out."""
        assert self.job is not None
        job_id = self.job.job_id
        record = None
        if not self._record_written:  # the job's record goes out with its first items
            record = sealed(self.job.record, self.total) if last else self.job.record
            self.record = as_stored(record)
            self._record_written = True
        wrote = self.store.add_chunk(job_id, self.chunks, self._metas, self._inputs,
                                     self.job.expire_at, record)
        self._metas, self._inputs, self._held = [], {}, 0
        if not wrote.written:
            raise JobEnded(job_id)
        self._check(wrote)
        if complete:
            names.send_chunk(self.celery, job_id, self.chunks, self.spec.queue,
                             max(0, wrote.tenant_queued_items - self._chunk_items))
            self.chunks += 1
            self._chunk_items = 0

    def _check(self, wrote: ChunkWrite) -> None:
        if self.limits is None:
            return
        retry = {"Retry-After": str(RETRY_AFTER_S)}
        if wrote.tenant_queued_items > self.limits.queued_items:
            raise ApiError(429, f"this tenant has more than {self.limits.queued_items} items"
                                " queued (its quota); retry when they are done",
                           "quota_exceeded", headers=retry)
        if wrote.tenant_input_bytes > self.limits.queued_bytes:
            raise ApiError(429, f"this tenant has more than {self.limits.queued_bytes} bytes of"
                                " images queued (its quota); retry when they are done",
                           "quota_exceeded", headers=retry)
        if wrote.input_bytes > self.limits.input_bytes:
            raise ApiError(503, "the service is at capacity (queued input); retry later",
                           "at_capacity", headers=retry)


def write_single_jobs(store: JobStore, celery: Celery,
                      entries: Sequence[tuple[JobSpec, dict[str, Any], bytes]]
                      ) -> list[dict[str, str]]:
    """Several one-image jobs (spec, item metadata, bytes) at once: one Redis round trip and
    one CLASSIFY_BATCH task for them all, so the worker classifies them in one forward pass.
    Returns each job's record as written. No Idempotency-Key here (JobWriter handles those).
    """
    records = [sealed(store.create_job(spec, write=False).record, 1) for spec, _, _ in entries]
    store.add_single_jobs([(record, meta, data) for record, (_, meta, data)
                           in zip(records, entries, strict=True)])
    celery.send_task(names.CLASSIFY_BATCH, args=[[[record["id"], 0] for record in records]],
                     queue=names.INTERACTIVE_QUEUE)
    return [as_stored(record) for record in records]


def sealed(record: dict[str, Any], total: int) -> dict[str, Any]:
    """A job whose items all go out in its first chunk: complete from the start."""
    return record | {"total": total, "chunks": 1, "sealed": 1}


def as_stored(record: dict[str, Any]) -> dict[str, str]:
    """The record as a later HGETALL reads it back."""
    return {k: str(v) for k, v in record.items() if k != "_created"}
