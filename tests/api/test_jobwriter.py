"""Streaming a job into the store: chunking, enqueueing as it goes, sealing, aborting."""

from __future__ import annotations

import pytest
import redis

from api.jobwriter import JobWriter
from store import keys
from store.jobs import JobSpec, JobStore
from worker import names


class FakeCelery:
    def __init__(self, store: JobStore) -> None:
        self.store, self.sent = store, []

    def send_task(self, name: str, args: list, queue: str | None = None) -> None:
        # The worker may run as soon as this returns: its inputs must already be stored.
        job_id, chunk = args
        assert self.store.r.exists(keys.job_key(job_id))
        self.sent.append((name, args, queue))


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore(redis.Redis.from_url(redis_url), 3600)


def writer(store: JobStore, chunk_size: int, **kwargs) -> JobWriter:
    spec = JobSpec(tenant="t", kind="bulk", source="files", queue=names.BULK_QUEUE,
                   chunk_size=chunk_size, **kwargs)
    return JobWriter(store, FakeCelery(store), spec)


def test_a_single_chunk_job_is_written_sealed_in_one_go(store):
    w = writer(store, 4)
    job_id = w.open().job_id
    assert not store.r.exists(keys.job_key(job_id))  # nothing until the items come
    for i in range(3):
        w.add({"filename": f"{i}"}, b"%d" % i)
    record = w.close()
    assert (record["total"], record["sealed"], record["status"]) == ("3", "1", "queued")
    assert store.get_job(job_id)["sealed"] == "1"
    assert w.celery.sent == [(names.CLASSIFY_CHUNK, [job_id, 0], names.BULK_QUEUE)]


def test_chunks_are_enqueued_while_items_arrive_then_sealed(store):
    w = writer(store, 2)
    job_id = w.open().job_id
    for i in range(5):
        w.add({"filename": f"{i}"}, b"x")
        assert len(w.celery.sent) == (i + 1) // 2
    record = w.close()
    assert [args for _, args, _ in w.celery.sent] == [[job_id, c] for c in range(3)]
    assert (record["total"], record["chunks"], record["sealed"]) == ("5", "3", "1")
    assert store.r.hlen(keys.input_key(job_id, 2)) == 1


def test_abort_removes_everything_written(store):
    w = writer(store, 2)
    job_id = w.open().job_id
    for i in range(3):
        w.add({"filename": f"{i}"}, b"x")
    w.abort()
    assert store.r.keys(f"*{job_id}*") == []
