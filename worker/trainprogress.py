"""A running training job's side of the liveness contract (store.training): claim the job,
report progress at most every REPORT_INTERVAL_S (and at every epoch end) rather than per step,
renew the lease from a thread while no steps run (data loading, evaluation, plots, export),
and turn a requested cancel into `should_stop()` for core.training.

Torch-free (the progress reports are duck-typed core.training.Progress objects).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from store.training import TrainingStore
from worker.periodic import Periodic

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.5


class ProgressLike(Protocol):
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    accuracy: float
    lr: float
    elapsed_s: float
    epoch_end: bool
    val_loss: float | None
    val_accuracy: float | None


def claim_job(store: TrainingStore, job_id: str, worker: str,
              sleep: Callable[[float], None] = time.sleep) -> int | None:
    """This attempt's number, or None when there is nothing to run. A job still leased is
    either being run by a live worker (a duplicate delivery) or was run by one that just died
    (a redelivery after a crash): wait out the lease once to tell which."""
    for attempt in range(2):
        outcome, detail = store.start(job_id, worker)
        if outcome == "start":
            return int(detail)
        if outcome != "leased":
            log.info("training job %s not run: %s %s", job_id, outcome, detail)
            return None
        if attempt == 0:
            sleep(max(0.0, float(detail) - time.time()) + 1.0)
    log.warning("training job %s is run by another live worker; leaving it", job_id)
    return None


class ProgressReporter:
    def __init__(self, store: TrainingStore, job_id: str,
                 interval_s: float = REPORT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.job_id = job_id
        self.interval_s = interval_s
        self.clock = clock
        self.history: list[dict[str, Any]] = []
        self.writes = 0
        self.stop_reason: str | None = None  # "cancelled" or "lost" (the job ended elsewhere)
        self._last = float("-inf")
        self._lock = threading.Lock()  # the lease thread writes too

    def on_progress(self, p: ProgressLike) -> None:
        """core.training's progress callback: called after every step and epoch."""
        if not p.epoch_end and self.clock() - self._last < self.interval_s:
            return  # most steps: nothing to do
        fields: dict[str, Any] = {
            "epoch": p.epoch, "epochs": p.epochs, "step": p.step, "steps": p.steps,
            "loss": round(p.loss, 6), "accuracy": round(p.accuracy, 6),
            "elapsed_s": round(p.elapsed_s, 2), "eta_s": _blank_if_none(eta_s(p)),
        }
        if p.epoch_end:
            entry = {"epoch": p.epoch, "train_loss": p.loss, "train_accuracy": p.accuracy,
                     "val_loss": p.val_loss, "val_accuracy": p.val_accuracy, "lr": p.lr,
                     "elapsed_s": round(p.elapsed_s, 2)}
            self.history.append(entry)
            fields |= {"val_loss": _blank_if_none(p.val_loss),
                       "val_accuracy": _blank_if_none(p.val_accuracy),
                       "history": json.dumps(self.history)}
        self._last = self.clock()
        self._write(fields)

    def renew(self) -> None:
        """Renew the lease (and learn about a cancel) without new progress; the throttle of
        progress writes is left alone, or frequent renewals would hold back every report."""
        self._write({})

    def should_stop(self) -> bool:
        return self.stop_reason is not None

    def _write(self, fields: dict[str, Any]) -> None:
        with self._lock:
            self.writes += 1
            outcome = self.store.progress(self.job_id, fields)
        if outcome == 1:
            self.stop_reason = self.stop_reason or "cancelled"
        elif outcome == -1:
            self.stop_reason = "lost"


def eta_s(p: ProgressLike) -> float | None:
    done = ((p.epoch - 1) * p.steps + p.step) / max(1, p.epochs * p.steps)
    return round(p.elapsed_s * (1 - done) / done, 1) if done > 0 else None


def _blank_if_none(value: float | None) -> float | str:
    return "" if value is None else value  # Redis hashes hold no None; "" reads back as null


def lease_keeper(reporter: ProgressReporter, every_s: float | None = None) -> Periodic:
    """Renews the job's lease from a daemon thread for as long as the block runs, a few times
    per lease; a Redis hiccup is logged and retried."""
    every_s = every_s or reporter.store.renew_every_s
    assert every_s < reporter.store.lease_s
    return Periodic(f"training-lease-{reporter.job_id}", every_s, reporter.renew)
