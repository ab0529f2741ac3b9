"""Per-tenant quotas and admission control: who may send what, now.

- **Quotas** (429 + Retry-After): a tenant's request rate (a moving window in Redis, from the
  `limits` library, shared by every API process), its bulk jobs queued or running, its items
  queued and their image bytes, its event streams (per API process) and its training jobs.
  The byte quota is what keeps one tenant from filling Redis (and tripping admission, which
  refuses everyone) on its own. Defaults are settings
  (TAGGER_QUOTA_*); TAGGER_TENANT_QUOTAS overrides them per tenant (JSON). The open local
  tenant of a server without keys has none: there is nobody to be fair to.
- **Admission** (503 + Retry-After): new submissions are refused while Redis uses more than
  TAGGER_ADMISSION_MEMORY_FRACTION of its budget, or the image bytes waiting in it pass
  TAGGER_ADMISSION_INPUT_FRACTION of it. The budget is Redis's own `maxmemory`, or
  TAGGER_REDIS_MAXMEMORY where Redis has none. What is admitted always has headroom to
  finish: workers free inputs as they record results, even at `maxmemory`
  (store/lua/record_results.lua).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, fields

import redis
import redis.asyncio as aioredis
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from api.errors import is_out_of_memory
from core.settings import Settings
from store.keys import RATE_LIMIT_PREFIX
from store.usage import Memory, aread_memory, aread_usage

ADMISSION_REFRESH_S = 0.5  # how stale this process's view of Redis memory may be
RETRY_AFTER_S = 30  # what a refused submission is told when nothing better is known


@dataclass(frozen=True)
class Quota:
    requests: RateLimitItem
    active_jobs: int
    queued_items: int
    queued_bytes: int
    streams: int
    training_jobs: int


QUOTA_FIELDS = tuple(f.name for f in fields(Quota))


class Quotas:
    """Each tenant's quota: the defaults, with that tenant's overrides. Fails loudly (at
    start-up) on an unknown field or a rate `limits` cannot parse."""

    def __init__(self, settings: Settings) -> None:
        self.default = _quota({name: getattr(settings, f"quota_{name}")
                               for name in QUOTA_FIELDS})
        self._tenants = {tenant: _quota({name: getattr(self.default, name)
                                          for name in QUOTA_FIELDS} | _checked(tenant, given))
                         for tenant, given in settings.tenant_quotas.items()}

    def of(self, tenant: str) -> Quota:
        return self._tenants.get(tenant, self.default)


def _checked(tenant: str, given: dict) -> dict:
    unknown = sorted(set(given) - set(QUOTA_FIELDS))
    if unknown:
        raise ValueError(f"TAGGER_TENANT_QUOTAS[{tenant!r}]: unknown {', '.join(unknown)};"
                         f" choose from: {', '.join(QUOTA_FIELDS)}")
    return given


def _quota(values: dict) -> Quota:
    requests = values["requests"]
    if not isinstance(requests, RateLimitItem):
        try:
            requests = parse(str(requests))
        except ValueError as exc:
            raise ValueError(f"quota requests: {requests!r} is not a rate such as"
                             " '100/second' or '5000/minute'") from exc
    return Quota(requests, *(int(values[name]) for name in QUOTA_FIELDS[1:]))


class RequestLimiter:
    """Request rate per tenant: a moving window kept in Redis by `limits`, so every API process
    counts the same requests."""

    def __init__(self, url: str, pool: aioredis.ConnectionPool) -> None:
        storage = RedisStorage(f"async+{url}", implementation="redispy", connection_pool=pool,
                               key_prefix=RATE_LIMIT_PREFIX)
        self._limiter = MovingWindowRateLimiter(storage)

    async def retry_after(self, rate: RateLimitItem, tenant: str) -> int | None:
        """None when the request may go on (it is counted), else seconds to wait."""
        try:
            if await self._limiter.hit(rate, tenant):
                return None
        except redis.exceptions.ResponseError as exc:
            if not is_out_of_memory(exc):
                raise
            # Redis is full (maxmemory): counting a request is a write it refuses. Reads must
            # go on, and admission control refuses the submissions meanwhile.
            return None
        stats = await self._limiter.get_window_stats(rate, tenant)
        return max(1, math.ceil(stats.reset_time - time.time()))


class Admission:
    """Whether new submissions are admitted, from Redis's memory and the queued input bytes,
    read at most every ADMISSION_REFRESH_S by this process (a submission costs no round trip
    for it)."""

    def __init__(self, aredis: aioredis.Redis, settings: Settings) -> None:
        self.aredis = aredis
        self.settings = settings
        self._read_at = -math.inf
        self._refusal: str | None = None
        self._input_mark = self.marks(Memory(0, 0))[1]
        self._lock = asyncio.Lock()

    def marks(self, memory: Memory) -> tuple[int, int]:
        """(memory high-water, input high-water) in bytes for this Redis."""
        budget = memory.max_bytes or self.settings.redis_maxmemory
        return (int(budget * self.settings.admission_memory_fraction),
                int(budget * self.settings.admission_input_fraction))

    @property
    def input_mark(self) -> int:
        """The input high-water mark as last read (an upload checks it as it is written)."""
        return self._input_mark

    async def refusal(self) -> str | None:
        """Why submissions are refused now, or None."""
        if time.monotonic() - self._read_at > ADMISSION_REFRESH_S and not self._lock.locked():
            async with self._lock:
                memory = await aread_memory(self.aredis)
                usage = await aread_usage(self.aredis, "")
                memory_mark, self._input_mark = self.marks(memory)
                self._refusal = (
                    "the job store is nearly full" if memory.used_bytes > memory_mark
                    else "too many images are waiting" if usage.input_bytes > self._input_mark
                    else None)
                self._read_at = time.monotonic()
        return self._refusal
