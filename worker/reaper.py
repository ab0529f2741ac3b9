"""The reaper's thread in a worker's main process: a sweep (store.recovery) every
TAGGER_REAPER_INTERVAL_S, whose findings become tasks. The API runs the same sweep (api.main),
so jobs end at their deadline even while no worker runs; a lock lets one process sweep per
interval."""

from __future__ import annotations

import logging
import threading
from functools import partial

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from store.recovery import Reaper
from worker.names import send_recovered

log = logging.getLogger(__name__)


class ReaperThread:
    def __init__(self, reaper: Reaper, celery: Celery) -> None:
        self.reaper = reaper
        self.celery = celery
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tagger-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.reaper.interval_s)

    def _run(self) -> None:
        while not self._stop.wait(self.reaper.interval_s):
            try:
                self.reaper.sweep_and_send(partial(send_recovered, self.celery))
            except (redis.RedisError, OperationalError) as exc:  # Redis away: next time
                log.warning("reaper sweep failed: %s", exc)
            except Exception:  # a bug must not stop the sweeps for good
                log.exception("reaper sweep failed")
