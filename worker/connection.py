"""Where Redis is: one rule shared by the API, the workers and the CLI.

`TAGGER_REDIS_URL` unset means "the local default": `fashion-tagger up` starts an embedded
Redis and passes its URL to its children, while `fashion-tagger api` / `worker` run against
redis://127.0.0.1:6379/0 (a Redis you started yourself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from core.settings import Settings

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url(settings: Settings) -> str:
    return settings.redis_url or DEFAULT_REDIS_URL


def sync_redis(settings: Settings) -> redis.Redis:
    # Binary-safe client (image bytes); callers decode the text fields they read.
    return redis.Redis.from_url(redis_url(settings), health_check_interval=30)


ScriptCall = tuple[Script, Sequence[Any], Sequence[Any]]  # (script, keys, args)


def run_scripts(client: redis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run several Lua script calls in one pipelined round trip, in order; their replies.

    redis-py's pipeline asks SCRIPT EXISTS for its scripts before every execute: a second
    round trip for each batch a worker writes. Here each call goes out as EVALSHA, and only
    the calls Redis answers NOSCRIPT (a restarted or flushed Redis) are sent again after
    loading their scripts, so no call runs twice. The first other error is raised.
    """
    replies: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    for attempt in range(2):
        with client.pipeline(transaction=False) as pipe:
            for i in pending:
                script, keys, args = calls[i]
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            answers = pipe.execute(raise_on_error=False)
        unknown = []
        for i, answer in zip(pending, answers, strict=True):
            if isinstance(answer, NoScriptError) and attempt == 0:
                unknown.append(i)
            elif isinstance(answer, Exception):
                raise answer
            else:
                replies[i] = answer
        if not unknown:
            break
        for script in {id(calls[i][0]): calls[i][0] for i in unknown}.values():
            client.script_load(script.script)
        pending = unknown
    return replies
