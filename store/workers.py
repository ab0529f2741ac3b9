"""Worker liveness: each worker stamps its name into a sorted set every few seconds (cheaper
than a broadcast `celery inspect ping`); GET /readyz and /metrics count the recent stamps."""

from __future__ import annotations

import time

import redis

from store.keys import WORKERS_KEY

HEARTBEAT_TTL_S = 30  # a worker not seen for this long counts as gone


def heartbeat(client: redis.Redis, hostname: str) -> None:
    now = time.time()
    with client.pipeline() as pipe:
        pipe.zadd(WORKERS_KEY, {hostname: now})
        pipe.zremrangebyscore(WORKERS_KEY, "-inf", now - 10 * HEARTBEAT_TTL_S)
        pipe.expire(WORKERS_KEY, 2 * HEARTBEAT_TTL_S)
        pipe.execute()


def worker_gone(client: redis.Redis, hostname: str) -> None:
    client.zrem(WORKERS_KEY, hostname)


def live_workers(client: redis.Redis) -> int:
    return int(client.zcount(WORKERS_KEY, time.time() - HEARTBEAT_TTL_S, "+inf"))

