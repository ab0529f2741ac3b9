"""Worker liveness for GET /readyz and /metrics: a thread in the worker's main process stamps
the worker's name into Redis every few seconds (store.workers)."""

from __future__ import annotations

import logging

import redis

from store import workers
from worker.periodic import Periodic

log = logging.getLogger(__name__)

INTERVAL_S = workers.HEARTBEAT_TTL_S / 3  # two beats may be missed before it counts as gone


class Heartbeat(Periodic):
    """Stamps the worker's name now and every INTERVAL_S; a Redis away for a moment shows in
    /readyz. Stopping removes the name: a worker shut down cleanly is gone at once."""

    def __init__(self, client: redis.Redis, hostname: str) -> None:
        super().__init__("heartbeat", INTERVAL_S, lambda: workers.heartbeat(client, hostname),
                         at_once=True)
        self.client, self.hostname = client, hostname

    def stop(self) -> None:
        super().stop()
        try:
            workers.worker_gone(self.client, self.hostname)
        except redis.RedisError as exc:
            log.warning("could not remove the heartbeat of %s: %s", self.hostname, exc)
