"""Worker liveness for GET /readyz and /metrics: a thread in the worker's main process stamps
the worker's name into Redis every few seconds (store.workers)."""

from __future__ import annotations

import logging
import threading

import redis

from store import workers

log = logging.getLogger(__name__)

INTERVAL_S = workers.HEARTBEAT_TTL_S / 3  # two beats may be missed before it counts as gone


class Heartbeat:
    def __init__(self, client: redis.Redis, hostname: str) -> None:
        self.client = client
        self.hostname = hostname
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tagger-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=INTERVAL_S)
        try:
            workers.worker_gone(self.client, self.hostname)
        except redis.RedisError as exc:
            log.warning("could not remove the heartbeat of %s: %s", self.hostname, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                workers.heartbeat(self.client, self.hostname)
            except redis.RedisError as exc:  # Redis away for a moment: /readyz says so
                log.warning("heartbeat failed: %s", exc)
            self._stop.wait(INTERVAL_S)
