"""Waiting for jobs to end: one Redis subscription per API process.

The store's scripts announce every job they end: its final record and, for a one-item job,
that item's result (store.events). A request that waits
(`POST /v1/classify?wait=N`) parks a future here instead of holding a pooled Redis connection
in a blocking BLMOVE, and answers from the announcement: under load, dozens of waiters cost
one connection and no commands. While the subscription is down (start-up, a Redis restart),
waits fall back to the job's `done` list, so no end is missed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from store.events import parse_announcement, subscribe_to_ended_jobs, wait_job_ended

log = logging.getLogger(__name__)

RECENT_S = 10.0  # ended jobs remembered, for waiters that register just after the message
RETRY_S = 1.0


@dataclass(frozen=True)
class JobEnd:
    """A job has ended. `record` and `result` (item 0's stored JSON, one-item jobs) are what
    its announcement carried; both None when the end was seen on the done list instead."""

    record: dict[str, str] | None = None
    result: bytes | None = None


ENDED_UNSEEN = JobEnd()


class CompletionListener:
    """`subscriber`: a client of its own, without a read timeout (a quiet channel is not an
    error); `aredis`: the shared client, for the fallback."""

    def __init__(self, subscriber: aioredis.Redis, aredis: aioredis.Redis) -> None:
        self.subscriber = subscriber
        self.aredis = aredis
        # A waiter's future gets its job's end, or None when the subscription broke.
        self._waiters: defaultdict[str, list[asyncio.Future[JobEnd | None]]] = defaultdict(list)
        self._recent: OrderedDict[str, tuple[float, JobEnd]] = OrderedDict()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="completions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.subscriber.aclose()

    async def wait(self, job_id: str, timeout_s: float) -> JobEnd | None:
        """Until the job ends (its JobEnd) or `timeout_s` passes (None)."""
        if job_id in self._recent:
            return self._recent[job_id][1]
        deadline = time.monotonic() + timeout_s
        if self._subscribed.is_set():
            future = self._register(job_id)
            try:
                end = await asyncio.wait_for(future, timeout_s)
                if end is not None:
                    return end
            except TimeoutError:
                return None
            finally:
                self._forget(job_id, future)
        # Not subscribed (yet, or any more): block on the job's done list for the rest.
        left = deadline - time.monotonic()
        ended = left > 0 and await wait_job_ended(self.aredis, job_id, left)
        return ENDED_UNSEEN if ended else None

    async def all_ended(self, job_ids: list[str]) -> None:
        """Until every one of the jobs has ended, as announced; at once while unsubscribed,
        and when the subscription breaks (callers use this to pace work, not to read results:
        falling back to the done lists would cost a connection per job)."""
        if not self._subscribed.is_set():
            return
        waiting = [(job_id, self._register(job_id)) for job_id in job_ids
                   if job_id not in self._recent]
        try:
            await asyncio.gather(*(future for _, future in waiting))
        finally:
            for job_id, future in waiting:
                self._forget(job_id, future)

    def _register(self, job_id: str) -> asyncio.Future[JobEnd | None]:
        future: asyncio.Future[JobEnd | None] = asyncio.get_running_loop().create_future()
        self._waiters[job_id].append(future)
        return future

    def _forget(self, job_id: str, future: asyncio.Future[JobEnd | None]) -> None:
        waiting = self._waiters.get(job_id)
        if waiting is not None:
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                del self._waiters[job_id]

    async def _run(self) -> None:
        while True:
            try:
                async with self.subscriber.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await subscribe_to_ended_jobs(pubsub)
                    self._subscribed.set()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._announced(message["data"])
            except (RedisError, OSError) as exc:
                log.warning("job completion subscription lost (%s); retrying", exc)
            self._subscribed.clear()
            self._release_all()  # their jobs may end unseen now: they fall back to BLMOVE
            await asyncio.sleep(RETRY_S)

    def _announced(self, data: bytes) -> None:
        try:
            announced = parse_announcement(data)
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring a malformed job announcement: %.100r", data)
            return
        self._ended(announced.job_id, JobEnd(announced.record, announced.result))

    def _ended(self, job_id: str, end: JobEnd) -> None:
        now = time.monotonic()
        self._recent[job_id] = (now, end)
        while self._recent and next(iter(self._recent.values()))[0] < now - RECENT_S:
            self._recent.popitem(last=False)
        for future in self._waiters.pop(job_id, ()):
            if not future.done():
                future.set_result(end)

    def _release_all(self) -> None:
        waiters, self._waiters = self._waiters, defaultdict(list)
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)
