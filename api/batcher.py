"""Dynamic batching of single-image submissions (POST /v1/classify).

Each request would otherwise cost a threadpool hop, a Redis round trip and a Celery task, and
a worker would run one task and one batch-1 forward pass per image. Instead, requests that
arrive while the previous batch is being written wait for the next one: one thread call writes
them all in one round trip and queues one task (worker.jobwriter.write_single_jobs), which a
worker classifies in one forward pass. Nothing waits on a timer: a lone request is written at
once, and batches grow only when requests arrive faster than batches are written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi.concurrency import run_in_threadpool

log = logging.getLogger(__name__)

WriteMany = Callable[[Sequence[Any]], list[dict[str, str]]]
MAX_BATCH = 64  # images per task: a forward pass of 64 is still a few milliseconds on a CPU


class SubmissionBatcher:
    """`await batcher.submit(entry)` -> that entry's job record, written with whatever other
    entries arrived meanwhile. `write_many(entries)` (blocking) returns one record per entry.
    Start it on the serving event loop (`start()`) and `stop()` it on shutdown."""

    def __init__(self, write_many: WriteMany, max_batch: int = MAX_BATCH) -> None:
        self.write_many = write_many
        self.max_batch = max_batch
        self._pending: list[tuple[Any, asyncio.Future[dict[str, str]]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
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
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), record in zip(batch, records, strict=True):
                if not future.done():  # its client may have gone away meanwhile
                    future.set_result(record)
