"""api.completions.CompletionListener against a real Redis: the job store's scripts announce
ended jobs, and waiters wake on the announcement, or fall back to the job's done list."""

from __future__ import annotations

import asyncio
import time

import redis
import redis.asyncio as aioredis

from api.completions import CompletionListener
from worker.jobkeys import DONE_CHANNEL, done_key, job_key
from worker.jobstore import JobSpec, JobStore
from worker.results import error_result


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
    assert ended == [True] * 3 and seconds < 1
    assert again  # a waiter that comes after the announcement does not wait


def test_a_wait_times_out_when_nothing_ends(redis_url):
    async def body(listener):
        start = time.perf_counter()
        return await listener.wait("never-ends", 0.3), time.perf_counter() - start

    ended, seconds = asyncio.run(listening(redis_url, body))
    assert not ended and 0.3 <= seconds < 1.5


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

    assert asyncio.run(body())


def test_only_announced_jobs_wake_their_own_waiters(redis_url):
    async def body(listener):
        other = asyncio.ensure_future(listener.wait("b", 0.5))
        mine = asyncio.ensure_future(listener.wait("a", 5))
        await asyncio.sleep(0.05)
        await listener.aredis.publish(DONE_CHANNEL, job_key("a"))
        return await mine, await other

    assert asyncio.run(listening(redis_url, body)) == (True, False)
