"""Where Redis is: one rule shared by the API, the workers and the CLI.

`TAGGER_REDIS_URL` unset means "the local default": `fashion-tagger up` starts an embedded
Redis and passes its URL to its children, while `fashion-tagger api` / `worker` run against
redis://127.0.0.1:6379/0 (a Redis you started yourself).
"""

from __future__ import annotations

import redis

from core.settings import Settings

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url(settings: Settings) -> str:
    return settings.redis_url or DEFAULT_REDIS_URL


def sync_redis(settings: Settings) -> redis.Redis:
    # Binary-safe client (image bytes); callers decode the text fields they read.
    return redis.Redis.from_url(redis_url(settings), health_check_interval=30)
