"""The chunk task's logic with a real Redis and the real Predictor (no Celery process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from core.settings import Settings
from store import keys
from store.jobs import JobSpec, JobStore
from store.results import job_summary, ok_result
from tests.conftest import png_bytes
from worker import chunks


@pytest.fixture(scope="module")
def predictor(model_path: Path):
    from core.predictor import Predictor

    return Predictor.from_checkpoint(model_path, device="cpu", backend="torch", threads=1)


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore(redis.Redis.from_url(redis_url), 3600)


def submit(store: JobStore, items: list[tuple[dict, bytes | None]], chunk_size: int = 4,
           review_threshold: float | None = None, model: str = "v1") -> str:
    """A bulk job pinned to `model` (the version whatever predictor the test passes serves)."""
    spec = JobSpec(tenant="t", kind="bulk", source="archive", queue="bulk",
                   chunk_size=chunk_size, top_k=2, review_threshold=review_threshold,
                   model=model)
    new = store.create_job(spec)
    for chunk, start in enumerate(range(0, len(items), chunk_size)):
        part = items[start:start + chunk_size]
        store.add_chunk(new.job_id, chunk, [m for m, _ in part],
                        {start + i: d for i, (_, d) in enumerate(part) if d is not None},
                        new.expire_at)
    store.seal(new.job_id, len(items), -(-len(items) // chunk_size))
    return new.job_id


def run_chunk(store: JobStore, predictor, job_id: str, chunk: int) -> dict | None:
    """One bulk task's work; the record of the job if this chunk finished it."""
    finished = chunks.classify_chunks(store, lambda version: predictor, Settings(),
                                      [(job_id, chunk)])
    return finished[0] if finished else None


def stored(store: JobStore, job_id: str) -> dict[int, dict]:
    raw = store.r.hgetall(keys.results_key(job_id))
    return {int(k): json.loads(v) for k, v in raw.items()}


def test_bad_items_get_errors_and_the_rest_match_the_offline_predictor(store, predictor):
    images = [png_bytes(i) for i in range(3)]
    items = [({"filename": "a.png"}, images[0]), ({"filename": "bad.png"}, b"not an image"),
             ({"filename": "b.png"}, images[1]), ({"filename": "c.png"}, images[2]),
             ({"filename": "n.zip", "error": "nested archives are not supported"}, None)]
    job_id = submit(store, items, chunk_size=8, review_threshold=1.0)
    assert run_chunk(store, predictor, job_id, 0) is not None
    results = stored(store, job_id)
    offline = predictor.predict_images(images, top_k=2)
    for index, expected in zip((0, 2, 3), offline, strict=True):
        item = results[index]
        assert (item["status"], item["label"], item["label_index"]) == (
            "ok", expected.label, expected.label_index)
        assert item["confidence"] == pytest.approx(expected.confidence, abs=1e-5)
        assert len(item["top_k"]) == 2 and item["needs_review"] is True  # threshold 1.0
        assert item["model_version"] == "v1"
    assert results[1]["status"] == "error" and "not a recognised image" in results[1]["error"]
    assert results[4]["error"] == "nested archives are not supported"
    job = store.get_job(job_id)
    assert (job["status"], job["done"], job["failed"]) == ("succeeded", "3", "2")
    assert job["model_version"] == "v1"


def test_rerunning_a_chunk_after_a_crash_neither_duplicates_nor_loses(store, predictor):
    items = [({"filename": f"{i}.png"}, png_bytes(i)) for i in range(6)]
    job_id = submit(store, items, chunk_size=3)
    # A worker died after writing item 0 of chunk 0 but before the rest: its inputs remain.
    first = predictor.predict_images([items[0][1]], top_k=2)[0]
    written = ok_result(0, items[0][0], first, None, "v1")
    store.r.hset(keys.results_key(job_id), 0, json.dumps(written))
    store.r.hincrby(keys.job_key(job_id), "done", 1)
    assert run_chunk(store, predictor, job_id, 0) is None
    assert run_chunk(store, predictor, job_id, 0) is None  # redelivery
    assert run_chunk(store, predictor, job_id, 1) is not None
    assert run_chunk(store, predictor, job_id, 1) is None
    job = store.get_job(job_id)
    assert (job["done"], job["failed"], job["status"]) == ("6", "0", "succeeded")
    assert sorted(stored(store, job_id)) == list(range(6))


def test_a_cancelled_job_skips_its_chunks(store, predictor):
    job_id = submit(store, [({"filename": f"{i}.png"}, png_bytes(i)) for i in range(4)], 2)
    run_chunk(store, predictor, job_id, 0)
    store.cancel(job_id)
    run_chunk(store, predictor, job_id, 1)
    assert sorted(stored(store, job_id)) == [0, 1]  # an ended job takes no more results
    job = store.get_job(job_id)
    assert job["status"] == "cancelled" and job_summary(job)["progress"]["skipped"] == 2
    assert not store.r.exists(keys.input_key(job_id, 1))


def test_a_chunk_that_keeps_killing_workers_is_given_up(store, predictor):
    job_id = submit(store, [({"filename": "x.png"}, png_bytes(1))], 4)
    for _ in range(chunks.MAX_ATTEMPTS):  # deliveries whose worker died mid-way
        store.start_chunks([(job_id, 0)], 60, interrupted=True)
    assert run_chunk(store, predictor, job_id, 0) is not None
    assert "gave up" in stored(store, job_id)[0]["error"]


def test_a_predictor_bug_becomes_per_item_errors_not_a_stuck_job(store):
    class Broken:
        def predict_images(self, images, top_k=3, max_pixels=0):
            raise RuntimeError("boom")

    job_id = submit(store, [({"filename": "x.png"}, png_bytes(1))], 4)
    assert run_chunk(store, Broken(), job_id, 0) is not None
    assert stored(store, job_id)[0]["error"] == "internal error while classifying"


def test_a_chunk_of_an_expired_job_is_dropped(store, predictor):
    assert run_chunk(store, predictor, "gone", 0) is None
    assert store.r.keys("tagger:job:gone*") == []


class Counting:
    """The real predictor, counting predict_images calls and their batch sizes."""

    def __init__(self, predictor) -> None:
        self.inner, self.calls = predictor, []

    def predict_images(self, images, top_k=3, max_pixels=0):
        self.calls.append(len(images))
        return self.inner.predict_images(images, top_k=top_k, max_pixels=max_pixels)


def single(store: JobStore, data: bytes, top_k: int = 3) -> str:
    spec = JobSpec(tenant="t", kind="classify", source="file", queue="interactive",
                   chunk_size=1, top_k=top_k, model="v1")
    new = store.create_job(spec)
    store.add_chunk(new.job_id, 0, [{"filename": "x.png"}], {0: data}, new.expire_at)
    store.seal(new.job_id, 1, 1)
    return new.job_id


def test_chunks_of_many_jobs_share_one_forward_pass_per_top_k(store, predictor):
    images = [png_bytes(i) for i in range(5)]
    counting = Counting(predictor)
    jobs = [single(store, images[i], top_k=3 if i < 4 else 5) for i in range(5)]
    bad = single(store, b"not an image")
    refs = [(job_id, 0) for job_id in jobs] + [(bad, 0), ("gone", 0)]
    finished = chunks.classify_chunks(store, lambda version: counting, Settings(), refs)
    assert sorted(job["id"] for job in finished) == sorted(jobs + [bad])  # "gone" dropped
    assert sorted(counting.calls) == [1, 5]  # top_k 3: 4 images + the bad one; top_k 5: 1
    offline = predictor.predict_images(images, top_k=3)
    for job_id, expected in zip(jobs, offline, strict=True):
        item = stored(store, job_id)[0]
        assert (item["label_index"], item["model_version"]) == (expected.label_index, "v1")
    assert len(stored(store, jobs[4])[0]["top_k"]) == 5
    assert stored(store, bad)[0]["status"] == "error"
    assert all(store.get_job(j)["status"] == "succeeded" for j in jobs)
    assert store.get_job(bad)["status"] == "failed"  # its only item failed
    # A redelivered batch task changes nothing and finishes nothing twice.
    assert chunks.classify_chunks(store, lambda version: counting, Settings(), refs) == []
    assert all(store.get_job(j)["done"] == "1" for j in jobs)
