"""The reaper's decisions against a real Redis, with explicit clocks: lapsed leases, deadlines,
interrupted uploads, undelivered webhooks, Redis restarts."""

from __future__ import annotations

import base64
import json
import time

import pytest
import redis

from store import keys
from store.jobs import JobSpec, JobStore
from store.recovery import Reaper, Resend, Sweep
from store.results import error_result, job_summary
from worker.names import CLASSIFY_CHUNK, chunks_in_task

TTL = 3600


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore(redis.Redis.from_url(redis_url), TTL)


def reaper(store: JobStore, stall: float = 30, restarted: bool = False) -> Reaper:
    """A reaper whose next sweep is a fresh interval, on a Redis it has seen before (unless
    `restarted`)."""
    store.r.delete(keys.REAPER_LOCK_KEY)
    if not restarted:
        store.r.set(keys.REDIS_RUN_ID_KEY, store.r.info("server")["run_id"])
    return Reaper(store, interval_s=0.001, upload_stall_s=stall, lease_s=60,
                  chunks_of=chunks_in_task)


def job(store: JobStore, n: int = 4, chunk_size: int = 2, sealed: bool = True,
        idempotency: str | None = None, **spec) -> str:
    new = store.create_job(JobSpec(tenant="t", kind="bulk", source="files", queue="bulk",
                                   chunk_size=chunk_size, model="v1", **spec), idempotency)
    for chunk, start in enumerate(range(0, n, chunk_size)):
        indices = range(start, min(n, start + chunk_size))
        store.add_chunk(new.job_id, chunk, [{"filename": f"{i}.png"} for i in indices],
                        {i: b"x" for i in indices}, new.expire_at,
                        new.record if chunk == 0 else None)
    if sealed:
        store.seal(new.job_id, n, -(-n // chunk_size))
    return new.job_id


def test_a_chunk_whose_lease_lapsed_is_queued_again_and_counted(store):
    job_id = job(store)
    store.start_chunks([(job_id, 0), (job_id, 1)], lease_s=60)
    store.renew_leases([(job_id, 1)], lease_s=-1)  # chunk 1's worker stopped renewing
    sweep = reaper(store).sweep()
    # Its tenant has 4 items queued, 2 of them ahead of it: its priority, as when first sent.
    assert sweep.chunks == [Resend(job_id, 1, "bulk", backlog=2)]
    assert store.get_job(job_id)["attempts:1"] == "1"
    assert reaper(store).sweep().chunks == []  # its lease is gone: the new delivery takes one
    store.record_results(job_id, 0, [error_result(i, {}, "x", "v1") for i in (0, 1)])
    store.start_chunks([(job_id, 1)], lease_s=-1)
    store.record_results(job_id, 1, [error_result(i, {}, "x", "v1") for i in (2, 3)])
    assert reaper(store).sweep().chunks == []  # recorded: nothing pending, nothing to do


def test_one_process_sweeps_per_interval(store):
    job(store)
    def fresh() -> Reaper:
        return Reaper(store, interval_s=5, upload_stall_s=30, lease_s=60,
                      chunks_of=chunks_in_task)

    assert fresh().sweep() is not None
    assert fresh().sweep() is None


def test_a_job_past_its_deadline_ends_with_the_rest_skipped(store):
    job_id = job(store, n=4, deadline_s=10, callback_url="http://example.com/hook")
    store.record_results(job_id, 0, [error_result(i, {}, "x", "v1") for i in (0, 1)])
    assert reaper(store).sweep(time.time() + 5).ended == []
    sweep = reaper(store).sweep(time.time() + 11)
    assert sweep.ended == [(job_id, "deadline")] and sweep.webhooks == [job_id]
    record = store.get_job(job_id)
    assert (record["status"], record["end_reason"]) == ("failed", "deadline")  # none tagged
    assert job_summary(record)["progress"]["skipped"] == 2
    assert not store.r.exists(keys.input_key(job_id, 1))  # unprocessed inputs dropped
    assert store.r.zscore(keys.WEBHOOK_OUTBOX_KEY, job_id) is not None
    assert reaper(store).sweep(time.time() + 12).ended == []  # ends once


def test_an_interrupted_upload_fails_and_frees_its_idempotency_key(store):
    job_id = job(store, sealed=False, idempotency="upload-1")
    idem = keys.idempotency_key("t", "upload-1")
    assert store.r.get(idem).decode() == job_id and store.r.ttl(idem) > 3000
    assert reaper(store, stall=30).sweep(time.time() + 10).ended == []  # still writing
    sweep = reaper(store, stall=30).sweep(time.time() + 31)
    assert sweep.ended == [(job_id, "upload interrupted")]
    record = store.get_job(job_id)
    assert (record["status"], record["end_reason"]) == ("failed", "upload interrupted")
    assert not store.r.exists(idem)
    assert store.create_job(JobSpec(tenant="t", kind="bulk", source="files", queue="bulk",
                                    chunk_size=2), "upload-1").created


def test_a_key_whose_job_was_never_written_frees_itself(store):
    spec = JobSpec(tenant="t", kind="bulk", source="files", queue="bulk", chunk_size=2)
    store.create_job(spec, "never-written", write=False)
    assert 0 < store.r.ttl(keys.idempotency_key("t", "never-written")) <= 300


def test_an_undelivered_webhook_is_sent_again_after_the_grace(store):
    job_id = job(store, n=2, callback_url="http://example.com/hook")
    store.record_results(job_id, 0, [error_result(i, {}, "x", "v1") for i in (0, 1)])
    assert store.r.zscore(keys.WEBHOOK_OUTBOX_KEY, job_id) is not None  # ended: in the outbox
    assert reaper(store).sweep().webhooks == []  # its worker is sending it now
    assert reaper(store).sweep(time.time() + 61).webhooks == [job_id]
    assert reaper(store).sweep(time.time() + 62).webhooks == []  # one resend per grace
    store.webhook_settled(job_id, "delivered")
    assert reaper(store).sweep(time.time() + 200).webhooks == []


def sent(sweep: Sweep) -> None:
    """A send_recovered whose sends all went out."""


def broker_away(sweep: Sweep) -> None:
    """A send_recovered whose first send fails."""
    raise ConnectionError("Error 111 connecting to broker. Connection refused.")


def test_a_chunk_whose_send_failed_is_decided_again_a_lease_later(store):
    job_id = job(store)
    store.start_chunks([(job_id, 1)], lease_s=-1)  # chunk 1's worker died
    with pytest.raises(ConnectionError):
        reaper(store).sweep_and_send(broker_away)  # decided (its lapsed lease removed); unsent
    assert reaper(store).sweep().chunks == []  # a send may still be on its way
    sweep = reaper(store).sweep_and_send(sent, time.time() + 61)
    assert sweep.chunks == [Resend(job_id, 1, "bulk", backlog=2)]
    assert store.get_job(job_id)["attempts:1"] == "1"  # one interruption, however many sends
    assert reaper(store).sweep(time.time() + 200).chunks == []  # sent: confirmed
    assert store.r.zcard(keys.RESENDS_KEY) == 0


def test_an_unconfirmed_send_of_a_chunk_since_started_or_done_is_forgotten(store):
    job_id = job(store)
    store.start_chunks([(job_id, 0), (job_id, 1)], lease_s=-1)
    reaper(store).sweep()  # both decided, neither confirmed
    store.start_chunks([(job_id, 0)], lease_s=600)  # a delivery did start chunk 0
    store.record_results(job_id, 1, [error_result(i, {}, "x", "v1") for i in (2, 3)])
    assert reaper(store).sweep(time.time() + 61).chunks == []
    assert store.r.zcard(keys.RESENDS_KEY) == 0


def test_after_a_redis_restart_pending_chunks_without_a_live_lease_are_queued_again(store):
    job_id = job(store, n=6)
    store.start_chunks([(job_id, 0)], lease_s=60)  # a live worker has chunk 0
    assert reaper(store).sweep().chunks == []
    store.r.set(keys.REDIS_RUN_ID_KEY, "a-run-before-the-crash")
    sweep = reaper(store, restarted=True).sweep()
    assert sweep.restarted
    assert sweep.chunks == [Resend(job_id, 1, "bulk", backlog=4),
                            Resend(job_id, 2, "bulk", backlog=4)]
    assert "attempts:1" not in store.get_job(job_id)  # not an interruption: not counted


def test_the_first_sweep_on_a_redis_records_it_and_runs_nothing_twice(store):
    job_id = job(store, n=4)  # queued chunks: their messages are in the broker
    store.r.delete(keys.REDIS_RUN_ID_KEY)
    sweep = reaper(store, restarted=True).sweep()
    assert not sweep.restarted and sweep.chunks == []
    assert store.r.get(keys.REDIS_RUN_ID_KEY).decode() == store.r.info("server")["run_id"]
    assert store.get_job(job_id)["status"] == "queued"


def test_a_chunk_delivered_to_a_worker_that_died_before_starting_it_is_sent_again(store):
    """kombu keeps a delivered, unacknowledged message in `unacked` until the visibility
    timeout (hours): a worker that died with a chunk reserved but not started left no lease."""
    job_id = job(store, n=4)
    body = base64.b64encode(json.dumps([[job_id, 1], {}, {}]).encode()).decode()
    message = json.dumps([{"body": body, "headers": {"task": CLASSIFY_CHUNK}}, "", "bulk"])
    store.r.hset(keys.KOMBU_UNACKED_KEY, "tag-1", message)
    store.r.zadd(keys.KOMBU_UNACKED_INDEX_KEY, {"tag-1": time.time()})
    assert reaper(store).sweep().chunks == []  # delivered just now: it may yet start
    later = time.time() + 61
    assert [r.chunk for r in reaper(store).sweep_and_send(sent, later).chunks] == [1]
    assert reaper(store).sweep(later + 5).chunks == []  # each delivery is resent once
    assert "attempts:1" not in store.get_job(job_id)  # it never ran: not an interruption
    store.r.hset(keys.KOMBU_UNACKED_KEY, "tag-2", message)
    store.r.zadd(keys.KOMBU_UNACKED_INDEX_KEY, {"tag-2": time.time() - 100})
    store.start_chunks([(job_id, 1)], lease_s=60)  # started and leased: it is running
    assert reaper(store).sweep(time.time() + 1).chunks == []
