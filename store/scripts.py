"""The store's Lua scripts: `store/lua/<name>.lua`, read once, called by EVALSHA with keys and
arguments (never built by string formatting).

Redis runs a script without interleaving other commands, so every state change that must be
atomic is one script. Scripts share a few functions (counting job transitions, announcing an
ended job, finishing a job): those live in `store/lua/lib/`, and a script's text is the library
files it names followed by its own file.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

LUA_DIR = Path(__file__).resolve().parent / "lua"

ScriptCall = tuple[Script, Sequence[Any], Sequence[Any]]  # (script, keys, args)


@cache
def lua_source(name: str, uses: tuple[str, ...] = ()) -> str:
    parts = [(LUA_DIR / "lib" / f"{lib}.lua").read_text() for lib in uses]
    return "\n".join([*parts, (LUA_DIR / f"{name}.lua").read_text()])


def register(client: redis.Redis, name: str, uses: tuple[str, ...] = ()) -> Script:
    """A callable script bound to `client` (its SHA is computed here; Redis loads it on the
    first call)."""
    return client.register_script(lua_source(name, uses))


def run_scripts(client: redis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run several script calls in one pipelined round trip, in order; their replies.

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
