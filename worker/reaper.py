"""The reaper's thread in a worker's main process: a sweep (store.recovery) every
TAGGER_REAPER_INTERVAL_S, whose findings become tasks. The API runs the same sweep (api.main),
so jobs end at their deadline even while no worker runs; a lock lets one process sweep per
interval."""

from __future__ import annotations

from functools import partial

from celery import Celery

from store.recovery import Reaper
from worker.names import send_recovered
from worker.periodic import Periodic


def reaper_thread(reaper: Reaper, celery: Celery) -> Periodic:
    """A sweep every interval, its findings sent as tasks by `celery`."""
    return Periodic("reaper-sweep", reaper.interval_s,
                    partial(reaper.sweep_and_send, partial(send_recovered, celery)))
