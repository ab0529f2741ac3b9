"""Writing a job's items into the store chunk by chunk, and enqueueing each chunk as soon as it
is stored: workers start on the first chunk while the rest of an upload is still being read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery

from store.jobs import JobSpec, JobStore, NewJob
from worker import names


class JobWriter:
    """Usage: `new = writer.open()`; if `new.created`: `add(...)` each item, then `close()`;
    on a failure half-way call `abort()` (the queued chunks then find no job and stop).

    A job of one chunk (a single image) costs one Redis round trip and one task message."""

    def __init__(self, store: JobStore, celery: Celery, spec: JobSpec,
                 idempotency: str | None = None) -> None:
        self.store = store
        self.celery = celery
        self.spec = spec
        self.idempotency = idempotency
        self.job: NewJob | None = None
        self.record: dict[str, str] = {}
        self.total = 0
        self.chunks = 0
        self._metas: list[dict[str, Any]] = []
        self._inputs: dict[int, bytes] = {}

    def open(self) -> NewJob:
        """Claim the job id (and Idempotency-Key); the record is written with the first chunk."""
        self.job = self.store.create_job(self.spec, self.idempotency, write=False)
        return self.job

    def add(self, meta: dict[str, Any], data: bytes | None) -> None:
        """One item: its metadata (item_id, filename, url or error) and its bytes, if any."""
        if data is not None:
            self._inputs[self.total] = data
        self._metas.append(meta)
        self.total += 1
        if len(self._metas) == self.spec.chunk_size:
            self._flush(last=False)

    def close(self) -> dict[str, str]:
        """Write what is left and seal the job; returns the job record as written."""
        assert self.job is not None
        if not self.total:
            raise ValueError("a job needs at least one item")
        if self.chunks == 0:
            self._flush(last=True)  # the whole job in one round trip, sealed from the start
            return self.record
        if self._metas:
            self._flush(last=False)
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

    def _flush(self, last: bool) -> None:
        assert self.job is not None
        job_id = self.job.job_id
        record = None
        if self.chunks == 0:  # the job's record goes out with its first items
            record = sealed(self.job.record, self.total) if last else self.job.record
            self.record = as_stored(record)
        self.store.add_chunk(job_id, self.chunks, self._metas, self._inputs, self.job.expire_at,
                             record)
        self.celery.send_task(names.CLASSIFY_CHUNK, args=[job_id, self.chunks],
                              queue=self.spec.queue)
        self.chunks += 1
        self._metas, self._inputs = [], {}


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
