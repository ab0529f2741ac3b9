"""The reaper's loop in an API process (store.recovery): jobs reach their deadline, and
interrupted uploads end, even while no worker runs. Workers run the same sweep; a lock in
Redis lets one process sweep per interval."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

import redis
from celery import Celery
from fastapi.concurrency import run_in_threadpool
from kombu.exceptions import OperationalError

from store.recovery import Reaper
from worker.names import send_recovered

log = logging.getLogger(__name__)


async def sweep_forever(reaper: Reaper, celery: Celery) -> None:
    while True:
        await asyncio.sleep(reaper.interval_s)
        try:
            await run_in_threadpool(reaper.sweep_and_send, partial(send_recovered, celery))
        except (redis.RedisError, OperationalError) as exc:  # Redis away: next time
            log.warning("reaper sweep failed: %s", exc)
        except Exception:  # a bug must not stop the sweeps for good
            log.exception("reaper sweep failed")
