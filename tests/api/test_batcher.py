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


class Batches:
    """until_ended for the in-flight limit: a batch ends when the test says so."""

    def __init__(self) -> None:
        self.ended: dict[str, asyncio.Event] = {}

    async def until_ended(self, job_ids: list[str]) -> None:
        await asyncio.gather(*(self.event(job_id).wait() for job_id in job_ids))

    def event(self, job_id: str) -> asyncio.Event:
        return self.ended.setdefault(job_id, asyncio.Event())

    def end(self, *job_ids: str) -> None:
        for job_id in job_ids:
            self.event(job_id).set()


def test_with_a_batch_in_flight_new_submissions_wait_and_go_out_together():
    write, batches = Recorder(), Batches()

    async def body():
        batcher = SubmissionBatcher(write, until_ended=batches.until_ended, max_in_flight=1)
        batcher.start()
        try:
            first = await asyncio.wait_for(batcher.submit("a"), 1)  # written at once
            later = [asyncio.ensure_future(batcher.submit(e)) for e in ("b", "c", "d")]
            await asyncio.sleep(0.1)
            waited = not any(f.done() for f in later)  # "a" is still out
            batches.end("job-a")
            return first, waited, await asyncio.wait_for(asyncio.gather(*later), 1)
        finally:
            await batcher.stop()

    first, waited, later = asyncio.run(body())
    assert first == {"id": "job-a"} and waited
    assert [r["id"] for r in later] == ["job-b", "job-c", "job-d"]
    assert write.batches == [["a"], ["b", "c", "d"]]  # one write for all that waited


def test_a_batch_that_never_ends_frees_its_slot_after_hold_s():
    write, batches = Recorder(), Batches()  # nothing ever ends

    async def body():
        batcher = SubmissionBatcher(write, until_ended=batches.until_ended, max_in_flight=1,
                                    hold_s=0.2)
        batcher.start()
        try:
            await batcher.submit("a")
            start = asyncio.get_running_loop().time()
            await asyncio.wait_for(batcher.submit("b"), 2)
            return asyncio.get_running_loop().time() - start
        finally:
            await batcher.stop()

    assert 0.15 <= asyncio.run(body()) < 1.5
    assert write.batches == [["a"], ["b"]]


def test_a_failed_write_gives_its_slot_back():
    write, batches = Recorder(fail=True), Batches()

    async def body():
        batcher = SubmissionBatcher(write, until_ended=batches.until_ended, max_in_flight=1)
        batcher.start()
        try:
            with pytest.raises(ConnectionError):
                await batcher.submit("a")
            write.fail = False
            return await asyncio.wait_for(batcher.submit("b"), 1)  # not held by "a"
        finally:
            await batcher.stop()

    assert asyncio.run(body()) == {"id": "job-b"}
