"""api.batcher.SubmissionBatcher on its own: who gets written together, and errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from api.batcher import SubmissionBatcher


class Recorder:
    """write_many that records each batch; `gate` holds the first write until released."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = fail

    def __call__(self, entries: Sequence[str]) -> list[dict[str, str]]:
        self.gate.wait(5)
        self.batches.append(list(entries))
        if self.fail:
            raise ConnectionError("redis is down")
        return [{"id": f"job-{e}"} for e in entries]


async def with_batcher(write: Recorder, body, max_batch: int = 64):
    batcher = SubmissionBatcher(write, max_batch=max_batch)
    batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.stop()


def test_a_lone_submission_is_written_at_once_with_no_timer():
    write = Recorder()

    async def body(batcher):
        return await asyncio.wait_for(batcher.submit("a"), 1)

    assert asyncio.run(with_batcher(write, body)) == {"id": "job-a"}
    assert write.batches == [["a"]]


def test_submissions_that_arrive_during_a_write_share_the_next_one():
    write = Recorder()
    write.gate.clear()  # the first write blocks until all the others are queued

    async def body(batcher):
        first = asyncio.ensure_future(batcher.submit("first"))
        await asyncio.sleep(0.05)  # the first write has started (and is blocked)
        others = [asyncio.ensure_future(batcher.submit(str(i))) for i in range(5)]
        await asyncio.sleep(0.05)
        write.gate.set()
        return await asyncio.gather(first, *others)

    records = asyncio.run(with_batcher(write, body, max_batch=3))
    assert [r["id"] for r in records] == ["job-first"] + [f"job-{i}" for i in range(5)]
    assert write.batches == [["first"], ["0", "1", "2"], ["3", "4"]]  # max_batch 3


def test_a_failed_write_fails_each_of_its_submissions_and_the_batcher_goes_on():
    write = Recorder(fail=True)

    async def body(batcher):
        results = await asyncio.gather(batcher.submit("a"), batcher.submit("b"),
                                       return_exceptions=True)
        write.fail = False
        return results, await batcher.submit("c")

    (a, b), c = asyncio.run(with_batcher(write, body))
    assert isinstance(a, ConnectionError) and isinstance(b, ConnectionError)
    assert c == {"id": "job-c"}


def test_submitting_to_a_stopped_batcher_is_an_error_not_a_hang():
    async def body():
        batcher = SubmissionBatcher(Recorder())
        with pytest.raises(RuntimeError, match="not running"):
            await batcher.submit("a")

    asyncio.run(body())
