"""The worker side of a training job's liveness contract (claim, progress, lease renewal) with a
real Redis and a simulated clock (no training, no torch)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
import redis

from store.training import DEFAULT_LEASE_S as LEASE_S
from store.training import TrainingStore, training_summary
from worker.trainprogress import ProgressReporter, claim_job, lease_keeper

REQUEST = {"dataset": "fashion-mnist", "arch": "default", "epochs": 2, "activate": "never"}


@pytest.fixture
def store(redis_url: str) -> TrainingStore:
    return TrainingStore(redis.Redis.from_url(redis_url), 600)


@dataclass
class P:
    epoch: int
    step: int
    epoch_end: bool = False
    epochs: int = 2
    steps: int = 100
    loss: float = 1.0
    accuracy: float = 0.5
    lr: float = 0.001
    elapsed_s: float = 1.0
    val_loss: float | None = None
    val_accuracy: float | None = None


def test_progress_writes_are_throttled_but_every_epoch_end_is_written(store: TrainingStore):
    job_id = store.create("ops", REQUEST)["id"]
    store.start(job_id, "w1")
    clock = [0.0]
    reporter = ProgressReporter(store, job_id, interval_s=0.5, clock=lambda: clock[0])
    for step in range(1, 101):  # 100 steps in 0.99 s: two writes, not a hundred
        clock[0] = step * 0.0099
        reporter.on_progress(P(1, step))
    assert reporter.writes == 2
    reporter.renew()  # lease renewals (every few seconds) do not hold back progress reports
    clock[0] = 1.02
    reporter.on_progress(P(1, 100))
    assert reporter.writes == 4
    reporter.on_progress(P(1, 100, True, val_loss=0.7, val_accuracy=0.8))
    assert reporter.writes == 5
    job = training_summary(store.get(job_id))
    assert job["val_accuracy"] == 0.8 and len(job["history"]) == 1
    assert job["eta_s"] == pytest.approx(1.0)  # half done in 1 s
    store.cancel(job_id)
    reporter.renew()
    assert reporter.should_stop() and reporter.stop_reason == "cancelled"


def test_the_lease_keeper_renews_from_a_thread(store: TrainingStore):
    job_id = store.create("ops", REQUEST)["id"]
    store.start(job_id, "w1")
    before = float(store.get(job_id)["lease_until"])
    reporter = ProgressReporter(store, job_id)
    with lease_keeper(reporter, every_s=0.05):
        time.sleep(0.3)
    assert reporter.writes >= 2 and float(store.get(job_id)["lease_until"]) > before


def test_claim_waits_out_a_lease_once(store: TrainingStore):
    job_id = store.create("ops", REQUEST)["id"]
    store.start(job_id, "w1", time.time() - LEASE_S + 0.2)  # a dead attempt, lease almost up
    slept: list[float] = []
    assert claim_job(store, job_id, "w2", sleep=lambda s: (slept.append(s), time.sleep(s))) == 2
    assert len(slept) == 1 and slept[0] < 2
    other = store.create("ops", REQUEST)["id"]
    store.start(other, "w1")  # alive: renewed while we wait
    renewals: list[int] = []  # the live worker renews its lease while we wait
    renew = lambda s: renewals.append(store.progress(other, {}))  # noqa: E731
    assert claim_job(store, other, "w2", sleep=renew) is None and renewals == [0]
    assert json.loads(store.get(other)["request"]) == REQUEST
