"""api.completions.CompletionListener against a real Redis: the job store's scripts announce
ended jobs with their record and result, and waiters wake on the announcement, or fall back to
the job's done list."""

from __future__ import annotations

import asyncio
import json
import time

import redis
import redis.asyncio as aioredis

from api.completions import ENDED_UNSEEN, CompletionListener
from store.jobs import JobSpec, JobStore
from store.keys import DONE_CHANNEL, done_key, job_key
from store.results import error_result


async def listening(redis_url: str, body):
    listener = CompletionListener(aioredis.Redis.from_url(redis_url),
                                  aioredis.Redis.from_url(redis_url))
    await listener.start()
    try:
        for _ in range(100):  # the subscription is made by the listener's own task
            if listener.subscribed:
                break
            await asyncio.sleep(0.01)
        return await body(listener)
    finally:
        await listener.stop()
        await listener.aredis.aclose()


def test_a_job_ended_by_the_store_wakes_its_waiters_at_once(redis_url):
    store = JobStore(redis.Redis.from_url(redis_url), 3600)
    new = store.create_job(JobSpec(tenant="t", kind="classify", source="file",
                                   queue="interactive", chunk_size=1, top_k=3))
    store.add_chunk(new.job_id, 0, [{"filename": "x.png"}], {0: b"x"}, new.expire_at)
    store.seal(new.job_id, 1, 1)

    async def body(listener):
        waiters = [asyncio.ensure_future(listener.wait(new.job_id, 5)) for _ in range(3)]
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        await asyncio.to_thread(store.record_results, new.job_id, 0,
                                [error_result(0, {"filename": "x.png"}, "bad", "v")])
        ended = await asyncio.gather(*waiters)
        return ended, time.perf_counter() - start, await listener.wait(new.job_id, 5)

    ended, seconds, again = asyncio.run(listening(redis_url, body))
    assert seconds < 1 and len(ended) == 3
    for end in [*ended, again]:  # a waiter that comes after the announcement does not wait
        assert end.record == store.get_job(new.job_id)  # the record as the script left it
        assert end.record["status"] == "failed"
        assert json.loads(end.result)["error"] == "bad"  # the one item's stored result


def test_a_job_of_many_items_is_announced_without_a_result(redis_url):
    store = JobStore(redis.Redis.from_url(redis_url), 3600)
    new = store.create_job(JobSpec(tenant="t", kind="bulk", source="files", queue="bulk",
                                   chunk_size=2, top_k=3))
    store.add_chunk(new.job_id, 0, [{"filename": "a.png"}, {"filename": "b.png"}],
                    {0: b"a", 1: b"b"}, new.expire_at)
    store.seal(new.job_id, 2, 1)

    async def body(listener):
        waiter = asyncio.ensure_future(listener.wait(new.job_id, 5))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(store.record_results, new.job_id, 0,
                                [error_result(i, {"filename": "x"}, "bad", "v") for i in (0, 1)])
        return await waiter

    end = asyncio.run(listening(redis_url, body))
    assert end.record["status"] == "failed" and end.record["total"] == "2"
    assert end.result is None


def test_a_wait_times_out_when_nothing_ends(redis_url):
    async def body(listener):
        start = time.perf_counter()
        return await listener.wait("never-ends", 0.3), time.perf_counter() - start

    ended, seconds = asyncio.run(listening(redis_url, body))
    assert ended is None and 0.3 <= seconds < 1.5


def test_without_a_subscription_a_wait_falls_back_to_the_done_list(redis_url):
    async def body():
        listener = CompletionListener(aioredis.Redis.from_url(redis_url),
                                      aioredis.Redis.from_url(redis_url))  # never started
        try:
            waiter = asyncio.ensure_future(listener.wait("j1", 5))
            await asyncio.sleep(0.05)
            await listener.aredis.rpush(done_key("j1"), "succeeded")
            return await waiter
        finally:
            await listener.aredis.aclose()
            await listener.subscriber.aclose()

    assert asyncio.run(body()) == ENDED_UNSEEN  # ended; nothing known but that


def announcement(job_id: str) -> str:
    return json.dumps({"key": job_key(job_id), "record": ["id", job_id, "status", "succeeded"]})


def test_only_announced_jobs_wake_their_own_waiters(redis_url):
    async def body(listener):
        other = asyncio.ensure_future(listener.wait("b", 0.5))
        mine = asyncio.ensure_future(listener.wait("a", 5))
        await asyncio.sleep(0.05)
        await listener.aredis.publish(DONE_CHANNEL, announcement("a"))
        return await mine, await other

    mine, other = asyncio.run(listening(redis_url, body))
    assert mine.record == {"id": "a", "status": "succeeded"} and mine.result is None
    assert other is None


def test_a_malformed_message_is_ignored_and_the_listener_goes_on(redis_url):
    async def body(listener):
        waiter = asyncio.ensure_future(listener.wait("a", 5))
        await asyncio.sleep(0.05)
        await listener.aredis.publish(DONE_CHANNEL, job_key("a"))  # not an announcement
        await listener.aredis.publish(DONE_CHANNEL, b"\xff{")
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await listener.aredis.publish(DONE_CHANNEL, announcement("a"))
        return await waiter

    assert asyncio.run(listening(redis_url, body)).record["status"] == "succeeded"


def test_all_ended_returns_when_every_job_is_announced(redis_url):
    async def body(listener):
        waiter = asyncio.ensure_future(listener.all_ended(["a", "b"]))
        await listener.aredis.publish(DONE_CHANNEL, announcement("a"))
        await asyncio.sleep(0.1)
        half = waiter.done()
        await listener.aredis.publish(DONE_CHANNEL, announcement("b"))
        await asyncio.wait_for(waiter, 5)
        return half

    assert asyncio.run(listening(redis_url, body)) is False  # "b" was still running


def test_all_ended_does_not_wait_without_a_subscription(redis_url):
    async def body():
        listener = CompletionListener(aioredis.Redis.from_url(redis_url),
                                      aioredis.Redis.from_url(redis_url))  # never started
        try:
            await asyncio.wait_for(listener.all_ended(["a"]), 1)  # pacing only: no fallback
        finally:
            await listener.aredis.aclose()
            await listener.subscriber.aclose()

    asyncio.run(body())
