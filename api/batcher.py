"""Dynamic batching of single-image submissions (POST /v1/classify).

Each request would otherwise cost a threadpool hop, a Redis round trip and a Celery task, and
a worker would run one task and one batch-1 forward pass per image. Instead, requests that
arrive while the previous batch is being written wait for the next one: one thread call writes
them all in one round trip and queues one task (api.jobwriter.write_single_jobs), which a
worker classifies in one forward pass. Nothing waits on a timer: a lone request is written at
once, and batches grow only when requests arrive faster than batches are written.

Under load, at most `max_in_flight` batches are out at a time (written, not yet all ended):
requests that arrive meanwhile would only queue behind them in Redis, so they wait here and go
out together when one ends. Batches then grow with the load instead of staying at whatever
arrived during one write, and each image carries less of a task's fixed cost (measured at 32
clients: 10.5 images per task without the limit, 16 with 2 batches out).
`until_ended(job_ids)` says when a batch has ended; a batch that takes longer than
`hold_s` frees its slot anyway, so a lost announcement or a dead worker never stalls intake.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi.concurrency import run_in_threadpool

log = logging.getLogger(__name__)

WriteMany = Callable[[Sequence[Any]], list[dict[str, str]]]
UntilEnded = Callable[[list[str]], Awaitable[Any]]
MAX_BATCH = 64  # images per task: a forward pass of 64 is still a few milliseconds on a CPU
HOLD_S = 2.0  # longest a batch keeps its in-flight slot


class SubmissionBatcher:
    """`await batcher.submit(entry)` -> that entry's job record, written with whatever other
    entries arrived meanwhile. `write_many(entries)` (blocking) returns one record per entry.
    Start it on the serving event loop (`start()`) and `stop()` it on shutdown."""

    def __init__(self, write_many: WriteMany, max_batch: int = MAX_BATCH,
                 until_ended: UntilEnded | None = None, max_in_flight: int = 2,
                 hold_s: float = HOLD_S) -> None:
        self.write_many = write_many
        self.max_batch = max_batch
        self.until_ended = until_ended  # None: no in-flight limit
        self.hold_s = hold_s
        self._pending: list[tuple[Any, asyncio.Future[dict[str, str]]]] = []
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._task: asyncio.Task[None] | None = None
        self._holding: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        for task in [self._task, *self._holding]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in [self._task, *self._holding] if t is not None],
                             return_exceptions=True)
        for _, future in self._pending:  # the server is stopping: nothing was written
            future.cancel()
        self._pending.clear()

    async def submit(self, entry: Any) -> dict[str, str]:
        if self._task is None or self._task.done():
            raise RuntimeError("the submission batcher is not running")
        future: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self.until_ended is not None:
                await self._slots.acquire()  # requests that come meanwhile join this batch
            batch, self._pending = (self._pending[:self.max_batch],
                                    self._pending[self.max_batch:])
            if not self._pending:
                self._wake.clear()
            try:
                records = await run_in_threadpool(self.write_many, [e for e, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:  # e.g. Redis down: each request answers with the error
                self._release_slot()
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if self.until_ended is not None:
                holding = asyncio.get_running_loop().create_task(
                    self._hold_slot([record["id"] for record in records]))
                self._holding.add(holding)
                holding.add_done_callback(self._holding.discard)
            for (_, future), record in zip(batch, records, strict=True):
                if not future.done():  # its client may have gone away meanwhile
                    future.set_result(record)

    async def _hold_slot(self, job_ids: list[str]) -> None:
        assert self.until_ended is not None
        try:
            await asyncio.wait_for(self.until_ended(job_ids), self.hold_s)
        except TimeoutError:
            pass
        except Exception:  # e.g. Redis down: the slot must come back whatever happened
            log.exception("waiting for a batch to end failed")
        finally:
            self._release_slot()

    def _release_slot(self) -> None:
        if self.until_ended is not None:
            self._slots.release()
