"""Job store semantics against a real Redis: TTLs, exactly-once counting and finishing, cancel."""

from __future__ import annotations

import threading

import pytest
import redis

from core.models import SHIPPED_MODEL_PATH
from store import keys
from store.jobs import JobSpec, JobStore, StartedChunk
from store.registry import ModelRegistry
from store.results import error_result, job_summary, skipped_result

TTL = 3600
SHIPPED = SHIPPED_MODEL_PATH.read_bytes()


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore(redis.Redis.from_url(redis_url), TTL)


def make_job(store: JobStore, n: int = 5, chunk_size: int = 2, tenant: str = "t1",
             idempotency: str | None = None, model: str | None = None) -> str:
    spec = JobSpec(tenant=tenant, kind="bulk", source="files", queue="bulk",
                   chunk_size=chunk_size, model=model)
    new = store.create_job(spec, idempotency)
    for chunk, start in enumerate(range(0, n, chunk_size)):
        indices = range(start, min(n, start + chunk_size))
        store.add_chunk(new.job_id, chunk, [{"filename": f"{i}.png"} for i in indices],
                        {i: b"img%d" % i for i in indices}, new.expire_at)
    store.seal(new.job_id, n, -(-n // chunk_size))
    return new.job_id


def results(indices, status: str = "error") -> list[dict]:
    if status == "skipped":
        return [skipped_result(i, {}, "cancelled") for i in indices]
    return [error_result(i, {}, "bad", "v1") for i in indices]


SERVICE_WIDE = (keys.METRICS_PREFIX, keys.ACTIVE_JOBS_KEY, keys.UPLOADING_KEY,
                keys.DEADLINES_KEY, keys.LEASES_KEY, keys.WEBHOOK_OUTBOX_KEY, keys.USAGE_KEY)


def test_every_key_gets_the_job_ttl(store: JobStore):
    job_id = make_job(store, idempotency="abc")
    store.record_results(job_id, 0, results([0, 1]))
    # Metrics counters and the reaper's indexes are service-wide: they never expire, and a
    # job leaves the indexes when it ends.
    found = [k for k in store.r.keys("tagger:*") if not k.decode().startswith(SERVICE_WIDE)]
    assert len(found) >= 7  # job, items, inputs, results, pending, tenant index, idem key
    for key in found:
        assert 0 < store.r.ttl(key) <= TTL, key


def test_an_ended_job_leaves_the_reapers_indexes(store: JobStore):
    job_id = make_job(store, n=2, chunk_size=2, model="v1")
    assert store.r.zscore(keys.ACTIVE_JOBS_KEY, job_id) is not None
    store.start_chunks([(job_id, 0)], lease_s=60)
    assert store.r.zscore(keys.LEASES_KEY, keys.lease_member(job_id, 0)) is not None
    assert store.record_results(job_id, 0, results([0, 1])) == 1
    for index in SERVICE_WIDE[1:-1]:  # the zsets (USAGE_KEY, last, is a hash)
        assert store.r.zrange(index, 0, -1) == [], index
    assert not store.r.exists(keys.pending_key(job_id))


def test_recording_a_chunk_twice_counts_each_item_once(store: JobStore):
    job_id = make_job(store, n=3, chunk_size=2)
    assert store.record_results(job_id, 0, results([0, 1])) == 0
    assert store.record_results(job_id, 0, results([0, 1])) == 0  # a redelivered chunk
    job = store.get_job(job_id)
    assert (job["failed"], job["status"]) == ("2", "queued")
    assert store.r.exists(keys.input_key(job_id, 0)) == 0  # inputs dropped once written
    assert store.record_results(job_id, 1, results([2])) == 1  # the last item finishes it
    assert store.record_results(job_id, 1, results([2])) == 0  # ...exactly once
    job = store.get_job(job_id)
    assert (job["failed"], job["status"]) == ("3", "failed")  # every item failed
    assert store.r.lrange(keys.done_key(job_id), 0, -1) == [b"failed"]
    assert job["finished_at"]


def test_concurrent_writers_never_double_count(store: JobStore):
    job_id = make_job(store, n=200, chunk_size=200)
    finished = []

    def write() -> None:
        own = JobStore(redis.Redis(connection_pool=store.r.connection_pool), TTL)
        finished.append(own.record_results(job_id, 0, results(range(200))))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(finished) == [0, 0, 0, 1]
    assert store.get_job(job_id)["failed"] == "200"
    assert store.r.hlen(keys.results_key(job_id)) == 200


def test_a_job_is_not_finished_before_it_is_sealed(store: JobStore):
    spec = JobSpec(tenant="t1", kind="bulk", source="files", queue="bulk", chunk_size=2)
    new = store.create_job(spec)
    store.add_chunk(new.job_id, 0, [{}, {}], {0: b"a", 1: b"b"}, new.expire_at)
    # The workers finish chunk 0 while the API is still reading the upload.
    assert store.record_results(new.job_id, 0, results([0, 1])) == 0
    assert store.get_job(new.job_id)["status"] == "queued"
    assert store.seal(new.job_id, 2, 1) is True  # sealing finds everything done


def test_cancel_skips_and_is_final(store: JobStore):
    job_id = make_job(store, n=4, chunk_size=2)
    store.record_results(job_id, 0, results([0, 1]))
    assert store.cancel(job_id) == 1
    assert store.r.exists(keys.input_key(job_id, 1)) == 0  # unprocessed inputs dropped
    assert store.cancel(job_id) == 0
    assert store.cancel("nope") == -1
    # A worker reaching the remaining chunk writes nothing: an ended job takes no results.
    assert store.record_results(job_id, 1, results([2, 3])) == 0
    job = store.get_job(job_id)
    assert (job["status"], job["failed"], job["end_reason"]) == ("cancelled", "2", "cancelled")
    assert job_summary(job)["progress"] == {"total": 4, "done": 0, "failed": 2, "skipped": 2}
    assert store.r.hlen(keys.results_key(job_id)) == 2


def test_starting_a_chunk_marks_running_and_counts_attempts(store: JobStore):
    job_id = make_job(store)
    store.r.set(keys.ACTIVE_MODEL_KEY, "v9")
    (started,) = store.start_chunks([(job_id, 1)], 60)
    assert (started.job["status"], started.job["model_version"], started.attempt) == (
        "running", "v9", 1)
    assert store.start_chunks([(job_id, 1)], 60)[0].attempt == 1  # a duplicate: not counted
    # A redelivery after its worker died counts towards giving the chunk up.
    assert store.start_chunks([(job_id, 1)], 60, interrupted=True)[0].attempt == 2
    assert store.start_chunks([("missing", 0)], 60)[0] == StartedChunk({}, 0)


def test_a_job_keeps_the_version_its_first_chunk_fixed(store: JobStore):
    registry = ModelRegistry(store.r)
    unpinned, pinned = make_job(store), make_job(store, model="v1")
    (nothing,) = store.start_chunks([(unpinned, 0)], 60)  # nothing registered: not started
    assert nothing.attempt == 0 and nothing.job["status"] == "queued"
    assert nothing.job["model_version"] == "" and "attempts:0" not in nothing.job
    registry.register(SHIPPED, "seed", only_if_empty=True)
    registry.activate(registry.register(SHIPPED, "t"))  # v2 active
    first, other = store.start_chunks([(unpinned, 0), (pinned, 0)], 60)
    assert (first.job["model_version"], other.job["model_version"]) == ("v2", "v1")
    registry.activate("v1")
    (later,) = store.start_chunks([(unpinned, 1)], 60)
    assert later.job["model_version"] == "v2"  # fixed by its first chunk: never mixed


def test_idempotency_key_returns_the_first_job(store: JobStore):
    spec = JobSpec(tenant="t1", kind="bulk", source="files", queue="bulk", chunk_size=2)
    first = store.create_job(spec, "key-1")
    again = store.create_job(spec, "key-1")
    other_tenant = store.create_job(JobSpec(**{**spec.__dict__, "tenant": "t2"}), "key-1")
    assert (again.job_id, again.created) == (first.job_id, False)
    assert other_tenant.created and other_tenant.job_id != first.job_id


def test_list_jobs_newest_first_with_cursor(store: JobStore):
    ids = [make_job(store, n=1) for _ in range(5)]
    make_job(store, n=1, tenant="someone-else")
    page1 = store.list_jobs("t1", 3, None)
    page2 = store.list_jobs("t1", 3, float(page1[-1]["_score"]))
    assert [j["id"] for j in page1 + page2] == ids[::-1]


def test_page_returns_metadata_and_written_results(store: JobStore):
    job_id = make_job(store, n=5, chunk_size=2)
    store.record_results(job_id, 1, results([2, 3]))
    page = store.page(job_id, 1, 4)
    assert [(i, meta["filename"], raw is not None) for i, meta, raw in page] == [
        (1, "1.png", False), (2, "2.png", True), (3, "3.png", True)]


def test_setting_a_field_never_recreates_an_expired_job(store: JobStore):
    job_id = make_job(store, n=1)
    store.set_field(job_id, "webhook", "delivered")
    assert store.get_job(job_id)["webhook"] == "delivered"
    store.set_field("expired", "webhook", "delivered")
    assert store.r.exists(keys.job_key("expired")) == 0
