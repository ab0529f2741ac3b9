"""The training job store with a real Redis and a simulated clock (no training, no torch)."""

from __future__ import annotations

import time

import pytest
import redis

from store.training import DEFAULT_LEASE_S as LEASE_S
from store.training import REDELIVERY_S, TrainingStore, lease_expired, training_summary

REQUEST = {"dataset": "fashion-mnist", "arch": "default", "epochs": 2, "activate": "never"}


@pytest.fixture
def store(redis_url: str) -> TrainingStore:
    return TrainingStore(redis.Redis.from_url(redis_url), 600)


def test_a_run_from_queued_to_succeeded(store: TrainingStore):
    job = store.create("ops", REQUEST)
    assert (job["status"], store.list_jobs(10)[0]["id"]) == ("queued", job["id"])
    assert store.start(job["id"], "w1") == ("start", "1")
    assert store.progress(job["id"], {"epoch": 1, "steps": 4, "step": 2}) == 0
    summary = training_summary(store.get(job["id"]))
    assert summary["progress"] == {"epoch": 1, "epochs": 2, "step": 2, "steps": 4,
                                   "fraction": 0.25}
    artifacts = {"curves.png": b"\x89PNG", "metrics.json": b"{}"}
    assert store.finish(job["id"], "succeeded", {"model_version": "v2"}, artifacts)
    summary = training_summary(store.get(job["id"]))
    assert (summary["status"], summary["model_version"]) == ("succeeded", "v2")
    assert summary["artifacts"] == ["curves.png", "metrics.json"] and summary["finished_at"]
    assert store.artifact(job["id"], "curves.png") == b"\x89PNG"
    assert store.r.ttl(f"tagger:training:{job['id']}:artifacts") > 0
    assert not store.finish(job["id"], "failed")  # only a running job ends
    assert store.start(job["id"], "w1") == ("ended", "succeeded")  # a late redelivery


def test_cancel_queued_at_once_and_running_cooperatively(store: TrainingStore):
    queued = store.create("ops", REQUEST)["id"]
    assert store.cancel(queued) == 1 and store.get(queued)["status"] == "cancelled"
    assert store.start(queued, "w1") == ("ended", "cancelled")
    running = store.create("ops", REQUEST)["id"]
    store.start(running, "w1")
    assert store.cancel(running) == 2 and store.get(running)["status"] == "running"
    assert store.progress(running, {}) == 1  # the worker learns it at its next report
    assert store.finish(running, "cancelled")
    assert store.cancel(running) == 0 and store.cancel("nope") == -1


def test_a_lost_worker_restarts_the_job_once_then_fails_it(store: TrainingStore):
    job_id = store.create("ops", REQUEST)["id"]
    now = time.time()
    assert store.start(job_id, "w1", now)[0] == "start"
    store.progress(job_id, {"epoch": 1, "history": "[{}]"}, now)
    assert store.start(job_id, "w2", now + 1)[0] == "leased"  # w1 may still be alive
    assert store.start(job_id, "w2", now + LEASE_S + 1) == ("start", "2")  # w1 is gone
    job = store.get(job_id)
    assert (job["epoch"], job["history"], job["worker"]) == ("0", "[]", "w2")  # clean restart
    outcome = store.start(job_id, "w3", now + 3 * LEASE_S)
    assert outcome == ("ended", "failed") and "worker lost" in store.get(job_id)["error"]


def test_the_reaper_ends_running_jobs_whose_lease_expired(store: TrainingStore):
    alive, dead, cancelled = (store.create("ops", REQUEST)["id"] for _ in range(3))
    now = time.time()
    store.start(dead, "w1", now - 2 * LEASE_S - REDELIVERY_S - 1)
    store.start(cancelled, "w1", now - 2 * LEASE_S - REDELIVERY_S - 1)
    store.cancel(cancelled)
    store.start(alive, "w2", now)
    assert lease_expired(store.get(dead), now) and not lease_expired(store.get(alive), now)
    assert sorted(store.reap_expired(now)) == sorted([dead, cancelled])
    assert store.get(dead)["status"] == "failed" and "worker lost" in store.get(dead)["error"]
    assert store.get(cancelled)["status"] == "cancelled"
    assert store.get(alive)["status"] == "running" and not store.reap(alive, now)
    assert store.progress(dead, {}) == -1  # a worker that was only paused must stop


def test_the_lease_length_is_recorded_and_used_by_the_reaper(redis_url: str):
    store = TrainingStore(redis.Redis.from_url(redis_url), 600, lease_s=2)
    api_side = TrainingStore(store.r, 600)  # the API reaps with whatever lease the job has
    job_id = store.create("ops", REQUEST)["id"]
    now = time.time()
    store.start(job_id, "w1", now)
    assert store.get(job_id)["lease_s"] == "2" and store.renew_every_s < 1
    assert not api_side.reap(job_id, now + 4 + REDELIVERY_S - 1)
    assert api_side.reap(job_id, now + 4 + REDELIVERY_S + 1)
