"""Worker liveness for GET /readyz: a thread in the worker's main process stamps the worker's
name into a Redis sorted set every few seconds (cheaper than a broadcast `celery inspect ping`).
"""

from __future__ import annotations

import logging
import threading

import redis

from worker.jobkeys import HEARTBEAT_TTL_S
from worker.jobstore import JobStore

log = logging.getLogger(__name__)

INTERVAL_S = HEARTBEAT_TTL_S / 3  # two beats may be missed before the API sees no worker


class Heartbeat:
    def __init__(self, store: JobStore, hostname: str) -> None:
        self.store = store
        self.hostname = hostname
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tagger-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=INTERVAL_S)
        try:
            self.store.worker_gone(self.hostname)
        except redis.RedisError as exc:
            log.warning("could not remove the heartbeat of %s: %s", self.hostname, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.store.heartbeat(self.hostname)
            except redis.RedisError as exc:  # Redis away for a moment: /readyz says so
                log.warning("heartbeat failed: %s", exc)
            self._stop.wait(INTERVAL_S)
