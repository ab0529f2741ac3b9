"""Streaming a job into the store: chunking, enqueueing as it goes, sealing, aborting."""

from __future__ import annotations

import pytest
import redis

from api.errors import ApiError
from api.jobwriter import JobEnded, JobWriter, WriteLimits
from store import keys
from store.jobs import JobSpec, JobStore
from store.usage import Usage, read_usage
from worker import names


class FakeCelery:
    def __init__(self, store: JobStore) -> None:
        self.store, self.sent, self.priorities = store, [], []

    def send_task(self, name: str, args: list, queue: str | None = None,
                  priority: int | None = None) -> None:
        # The worker may run as soon as this returns: its inputs must already be stored.
        job_id, chunk = args
        assert self.store.r.exists(keys.job_key(job_id))
        self.sent.append((name, args, queue))
        self.priorities.append(priority)


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


def test_a_chunks_priority_falls_as_its_tenants_backlog_grows(store):
    """Fair scheduling (worker.names.chunk_priority): a tenant's first chunks go out at the
    top priority, later ones lower each time its backlog doubles; another tenant with nothing
    waiting starts at the top again."""
    big = writer(store, 256)
    big.open()
    for i in range(256 * 9):
        big.add({"filename": f"{i}"}, b"x")
    assert big.celery.priorities == [0, 1, 2, 2, 3, 3, 3, 3, 4]
    small = JobWriter(store, FakeCelery(store), JobSpec(
        tenant="u", kind="bulk", source="files", queue=names.BULK_QUEUE, chunk_size=256))
    small.open()
    small.add({"filename": "a"}, b"x")
    small.close()
    assert small.celery.priorities == [0]


def test_a_chunk_of_large_images_goes_to_redis_in_pieces(store, monkeypatch):
    monkeypatch.setattr("api.jobwriter.PIECE_BYTES", 1000)
    w = writer(store, 4)
    job_id = w.open().job_id
    for i in range(3):
        w.add({"filename": f"{i}"}, b"x" * 600)
        assert w._held < 1000  # never more than a piece held
    assert w.celery.sent == []  # the chunk is not complete: no task yet
    assert store.r.hlen(keys.input_key(job_id, 0)) == 2  # written so far
    w.add({"filename": "3"}, b"x" * 10)
    assert [args for _, args, _ in w.celery.sent] == [[job_id, 0]]
    record = w.close()
    assert (record["total"], record["chunks"]) == ("4", "1")
    assert store.r.hlen(keys.input_key(job_id, 0)) == 4
    assert store.get_job(job_id)["inbytes:0"] == str(3 * 600 + 10)


@pytest.mark.parametrize("limits,status", [
    (WriteLimits(queued_items=3, queued_bytes=10**9, input_bytes=10**9), 429),
    (WriteLimits(queued_items=10**9, queued_bytes=5, input_bytes=10**9), 429),
    (WriteLimits(queued_items=10**9, queued_bytes=10**9, input_bytes=5), 503)])
def test_an_upload_stops_at_its_tenants_quota_or_the_admission_mark(store, limits, status):
    spec = JobSpec(tenant="t", kind="bulk", source="files", queue=names.BULK_QUEUE,
                   chunk_size=2)
    w = JobWriter(store, FakeCelery(store), spec, limits=limits)
    job_id = w.open().job_id
    with pytest.raises(ApiError) as refused:
        for i in range(6):
            w.add({"filename": f"{i}"}, b"xyz")
    assert refused.value.status == status and refused.value.headers["Retry-After"]
    w.abort()
    assert store.r.keys(f"*{job_id}*") == []
    assert read_usage(store.r, "t") == Usage(0, 0, 0, 0)


def test_an_upload_cancelled_half_way_stops_being_written(store):
    w = writer(store, 2)
    job_id = w.open().job_id
    for i in range(2):
        w.add({"filename": f"{i}"}, b"x")
    store.cancel(job_id)
    with pytest.raises(JobEnded):
        for i in range(2, 6):
            w.add({"filename": f"{i}"}, b"x")
    assert store.r.llen(keys.items_key(job_id)) == 2
