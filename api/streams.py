"""Event streams (`/events`) are long-lived: each holds a task, a socket and, every tick, a
pooled Redis connection. An API process serves at most TAGGER_SSE_MAX_STREAMS of them (503
beyond) and a tenant at most its `streams` quota in it (429 beyond); their Redis connections
come from a pool of that size (api.main), so they can never exhaust Redis or the process.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import AsyncIterator

from api.auth import Tenant
from api.errors import ApiError

RETRY_AFTER_S = "10"


class StreamSlots:
    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
        self.open = 0
        self.by_tenant: Counter[str] = Counter()

    def guarded(self, tenant: Tenant, limit: int | None, events: AsyncIterator[str]
                ) -> AsyncIterator[str]:
        """`events`, holding a slot from now until the stream ends or its client leaves;
        raises the 429/503 when there is none (`limit`: the tenant's, None for no quota)."""
        if self.open >= self.max_streams:
            raise ApiError(503, f"this server is streaming to {self.open} clients, its limit;"
                                " poll GET /v1/jobs/{id} or retry later", "at_capacity",
                           headers={"Retry-After": RETRY_AFTER_S})
        if limit is not None and self.by_tenant[tenant.name] >= limit:
            raise ApiError(429, f"this tenant has {limit} event streams open here (its quota);"
                                " close one or poll instead", "quota_exceeded",
                           headers={"Retry-After": RETRY_AFTER_S})
        self.open += 1
        self.by_tenant[tenant.name] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open -= 1
                self.by_tenant[tenant.name] -= 1
                if not self.by_tenant[tenant.name]:
                    del self.by_tenant[tenant.name]

        stream = self._held(events, release)
        weakref.finalize(stream, release)  # a stream never started (its client left first)
        return stream

    @staticmethod
    async def _held(events: AsyncIterator[str], release) -> AsyncIterator[str]:
        try:
            async for event in events:
                yield event
        finally:  # the end, the client gone (the generator is closed) or an error
            release()
