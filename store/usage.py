"""What the queues hold now, for admission control and quotas (api.quotas): per tenant, its
bulk jobs queued or running, its items written but not yet done and their image bytes; over
all jobs, the image bytes still waiting in Redis; and Redis's own memory.

The counters live in one hash (store.keys.USAGE_KEY) and are changed only by the writes and
scripts that change what they count (store/lua/add_chunk.lua, lib/job_context.lua), so they
are exact, not sampled. Reads here are plain HMGET/INFO, async for the API's event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from store.keys import INPUT_BYTES_FIELD, USAGE_KEY, usage_field


@dataclass(frozen=True)
class Usage:
    active_jobs: int  # the tenant's bulk jobs queued or running
    queued_items: int  # the tenant's items written and not yet done
    queued_bytes: int  # the tenant's image bytes waiting in Redis
    input_bytes: int  # every tenant's image bytes waiting in Redis


@dataclass(frozen=True)
class Memory:
    used_bytes: int  # Redis's used_memory
    max_bytes: int  # its maxmemory (0: none set)


def _fields(tenant: str) -> list[str]:
    return [usage_field(tenant, "active_jobs"), usage_field(tenant, "queued_items"),
            usage_field(tenant, "input_bytes"), INPUT_BYTES_FIELD]


def _usage(raw: list[bytes | None]) -> Usage:
    return Usage(*(int(value or 0) for value in raw))


def read_usage(client: redis.Redis, tenant: str) -> Usage:
    return _usage(client.hmget(USAGE_KEY, _fields(tenant)))


async def aread_usage(aredis: aioredis.Redis, tenant: str) -> Usage:
    return _usage(await aredis.hmget(USAGE_KEY, _fields(tenant)))


async def aread_memory(aredis: aioredis.Redis) -> Memory:
    info = await aredis.info("memory")
    return Memory(int(info["used_memory"]), int(info.get("maxmemory", 0)))
