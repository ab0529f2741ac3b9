"""A daemon thread that does one thing every so often while its process works: renew chunk
and training-job leases, stamp the worker's heartbeat, sweep for lost work. A tick that fails
(Redis or the broker away for a moment, or a bug) is logged, and the next tick tries again:
the thread never dies of it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)


class Periodic:
    """`tick` every `every_s` (first at once with `at_once`) from `start` until `stop`; also a
    context manager around a block of work."""

    def __init__(self, what: str, every_s: float, tick: Callable[[], object],
                 at_once: bool = False) -> None:
        self.what, self.every_s, self.tick, self.at_once = what, every_s, tick, at_once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tagger-{what}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every_s)

    def __enter__(self) -> Periodic:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        if self.at_once:
            self._tick()
        while not self._stop.wait(self.every_s):
            self._tick()

    def _tick(self) -> None:
        try:
            self.tick()
        except (redis.RedisError, OperationalError) as exc:  # away for a moment: next time
            log.warning("%s failed: %s", self.what, exc)
        except Exception:
            log.exception("%s failed", self.what)
