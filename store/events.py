"""The API's event-loop side of the store (redis.asyncio): reading a job, waiting for it to
end, and the announcements of ended jobs.

A job ends in a Lua script (store/lua/lib/finish_job.lua, cancel_job.lua) that pushes a token
on the job's `done` list and publishes the job's record on DONE_CHANNEL (with item 0's result
for a one-item job). One subscription per API process serves every waiting request; the done
list is the fallback while the subscription is down, and what event streams block on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis.asyncio as aioredis

from store.keys import (
    DONE_CHANNEL,
    done_key,
    items_key,
    job_key,
    results_key,
    training_done_key,
    training_key,
)
from store.records import decode_hash


@dataclass(frozen=True)
class Announcement:
    """An ended job, as its announcement carried it."""

    job_id: str
    record: dict[str, str]
    result: bytes | None  # item 0's stored result JSON (one-item jobs only)


def parse_announcement(data: bytes) -> Announcement:
    """A DONE_CHANNEL message; raises ValueError/KeyError/TypeError when malformed."""
    message = json.loads(data)
    record = decode_hash(message["record"])
    result = message.get("result")
    return Announcement(record["id"], record,
                        result.encode() if isinstance(result, str) else None)


async def subscribe_to_ended_jobs(pubsub: aioredis.client.PubSub) -> None:
    await pubsub.subscribe(DONE_CHANNEL)


async def read_job(aredis: aioredis.Redis, job_id: str) -> dict[str, str] | None:
    return decode_hash(await aredis.hgetall(job_key(job_id))) or None


async def read_single(aredis: aioredis.Redis, job_id: str
                      ) -> tuple[dict[str, str], bytes | None, dict | None]:
    """A one-item job's record, item 0's stored result and item 0's metadata."""
    async with aredis.pipeline(transaction=False) as pipe:
        pipe.hgetall(job_key(job_id))
        pipe.hget(results_key(job_id), "0")
        pipe.lindex(items_key(job_id), 0)
        raw_job, raw_result, raw_meta = await pipe.execute()
    return decode_hash(raw_job), raw_result, json.loads(raw_meta) if raw_meta else None


async def wait_job_ended(aredis: aioredis.Redis, job_id: str, timeout_s: float) -> bool:
    """Block (without blocking the event loop) until the job ends or `timeout_s` passes."""
    return await _wait_token(aredis, done_key(job_id), timeout_s)


async def read_training(aredis: aioredis.Redis, job_id: str) -> dict[str, str] | None:
    return decode_hash(await aredis.hgetall(training_key(job_id))) or None


async def wait_training_ended(aredis: aioredis.Redis, job_id: str, timeout_s: float) -> bool:
    return await _wait_token(aredis, training_done_key(job_id), timeout_s)


async def _wait_token(aredis: aioredis.Redis, key: str, timeout_s: float) -> bool:
    # BLMOVE of the list onto itself wakes every waiter at once and leaves the token for the
    # next ones (a BLPOP would take it from them).
    return await aredis.blmove(key, key, timeout_s, "RIGHT", "LEFT") is not None
