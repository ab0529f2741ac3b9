"""The usage counters (admission control, quotas) stay exact through every way a job changes:
written in pieces, recorded, finished, cancelled mid-upload, discarded, ended by the reaper;
and a full Redis still lets workers record results and free inputs."""

from __future__ import annotations

import time

import pytest
import redis

from cli.redis_server import EmbeddedRedis
from store import keys
from store.jobs import EXPIRY_GUARD_S, JobSpec, JobStore
from store.results import error_result
from store.usage import Usage, read_usage

TTL, SINGLE_TTL = 3600, 120


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore(redis.Redis.from_url(redis_url), TTL, SINGLE_TTL)


def bulk(store: JobStore, tenant: str = "a", chunk_size: int = 2):
    return store.create_job(JobSpec(tenant=tenant, kind="bulk", source="files", queue="bulk",
                                    chunk_size=chunk_size), write=False)


def write(store: JobStore, new, chunk: int, indices: range, record: bool = False):
    return store.add_chunk(new.job_id, chunk, [{"filename": f"{i}"} for i in indices],
                           {i: b"x" * 100 for i in indices}, new.expire_at,
                           new.record if record else None)


def record(store: JobStore, job_id: str, chunk: int, indices: range) -> int:
    return store.record_results(job_id, chunk, [error_result(i, {}, "bad", "v1")
                                                for i in indices])


def usage(store: JobStore, tenant: str = "a") -> Usage:
    return read_usage(store.r, tenant)


def test_a_job_is_counted_as_written_and_uncounted_as_recorded(store):
    new = bulk(store)
    wrote = write(store, new, 0, range(0, 2), record=True)
    assert (wrote.written, wrote.tenant_queued_items, wrote.input_bytes,
            wrote.tenant_input_bytes) == (True, 2, 200, 200)
    write(store, new, 1, range(2, 3))
    store.seal(new.job_id, 3, 2)
    assert usage(store) == Usage(active_jobs=1, queued_items=3, queued_bytes=300,
                                 input_bytes=300)
    assert usage(store, "b") == Usage(0, 0, 0, 300)  # input bytes: the tenant's, everyone's
    record(store, new.job_id, 0, range(0, 2))
    assert usage(store) == Usage(1, 1, 100, 100)
    record(store, new.job_id, 0, range(0, 2))  # a redelivered chunk changes nothing
    assert usage(store) == Usage(1, 1, 100, 100)
    assert record(store, new.job_id, 1, range(2, 3)) == 1  # the last one finishes the job
    assert usage(store) == Usage(0, 0, 0, 0)


def test_a_chunk_written_in_pieces_is_counted_once_per_byte(store):
    new = bulk(store, chunk_size=4)
    write(store, new, 0, range(0, 2), record=True)
    write(store, new, 0, range(2, 4))
    assert store.get_job(new.job_id)["inbytes:0"] == "400"
    assert usage(store) == Usage(1, 4, 400, 400)
    store.cancel(new.job_id)
    assert usage(store) == Usage(0, 0, 0, 0)
    assert not store.r.exists(keys.input_key(new.job_id, 0))


def test_a_job_cancelled_while_uploading_takes_nothing_more(store):
    new = bulk(store)
    write(store, new, 0, range(0, 2), record=True)
    assert store.cancel(new.job_id) == 1
    assert usage(store) == Usage(0, 0, 0, 0)
    assert not write(store, new, 1, range(2, 4)).written  # not stored, not counted
    assert usage(store) == Usage(0, 0, 0, 0)
    assert not store.r.exists(keys.input_key(new.job_id, 1))


def test_a_discarded_upload_is_uncounted(store):
    new = bulk(store)
    write(store, new, 0, range(0, 2), record=True)
    write(store, new, 1, range(2, 4))
    store.discard(new.job_id, "a")
    assert usage(store) == Usage(0, 0, 0, 0)


def test_a_job_the_reaper_ends_is_uncounted(store):
    new = bulk(store)
    write(store, new, 0, range(0, 2), record=True)
    assert store.end_early(new.job_id, "upload interrupted") == 1
    assert usage(store) == Usage(0, 0, 0, 0)


def test_single_image_jobs_are_counted_and_kept_for_their_own_ttl(store):
    spec = JobSpec(tenant="a", kind="classify", source="file", queue="interactive",
                   chunk_size=1)
    records = [store.create_job(spec, write=False).record | {"total": 1, "chunks": 1,
                                                              "sealed": 1} for _ in range(3)]
    store.add_single_jobs([(r, {"filename": "x"}, b"y" * 10) for r in records])
    assert usage(store) == Usage(0, 3, 30, 30)  # a single image is no active bulk job
    job_id = records[0]["id"]
    assert 0 < store.r.ttl(keys.job_key(job_id)) <= SINGLE_TTL
    # It never outlives its keys: the reaper ends it (as past a deadline) just before.
    guard = store.r.zscore(keys.DEADLINES_KEY, job_id)
    assert guard == int(records[0]["expire_at"]) - EXPIRY_GUARD_S
    for r in records:
        record(store, r["id"], 0, range(0, 1))
    assert usage(store) == Usage(0, 0, 0, 0)
    assert store.r.zcard(keys.DEADLINES_KEY) == 0


def test_a_full_redis_still_records_results_and_frees_inputs(tmp_path):
    """noeviction refuses writes past maxmemory; record_results starts by deleting (lease,
    pending mark, inputs), and Redis lets a script that has written go on writing, so workers
    drain a full Redis instead of failing with it."""
    with EmbeddedRedis(tmp_path, maxmemory=8 * 1024 * 1024) as server:
        client = redis.Redis.from_url(server.url)
        store = JobStore(client, TTL)
        new = bulk(store, chunk_size=4)
        big = {i: b"z" * 1_000_000 for i in range(4)}
        store.add_chunk(new.job_id, 0, [{"filename": f"{i}"} for i in range(4)], big,
                        new.expire_at, new.record)
        store.seal(new.job_id, 4, 1)
        filler = 0
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            while True:  # fill it to the brim
                client.set(f"filler:{filler}", b"f" * 500_000)
                filler += 1
        time.sleep(0.1)
        assert record(store, new.job_id, 0, range(0, 4)) == 1
        assert store.get_job(new.job_id)["status"] == "failed"  # every item "failed": ended
        assert read_usage(client, "a") == Usage(0, 0, 0, 0)
        assert not client.exists(keys.input_key(new.job_id, 0))
