"""The training job store: training jobs, their progress and artifacts in Redis (key layout:
store.keys; every key expires with its job, TAGGER_RESULT_TTL_S after creation; the model a job
produced lives on in the registry).

Liveness: the worker running a job renews `lease_until` (now + `lease_s`, recorded in the job;
TAGGER_TRAINING_LEASE_S, 30 s by default) every sixth of the lease. A job whose lease expired
one more lease (+ REDELIVERY_S) ago is ended by the reaper as failed ("worker lost"): a task
redelivered after a crash gets that grace to restart the job cleanly, which it does once
(MAX_ATTEMPTS), then fails it. Every transition is one Lua script (store/lua/training_*.lua),
so a reaper, a cancel and a redelivered task racing each other leave one consistent state.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis

from store import scripts
from store.keys import (
    TRAINING_JOBS_KEY,
    TRAINING_RUNNING_KEY,
    artifacts_key,
    tenant_training_key,
    training_done_key,
    training_key,
)
from store.records import decode_hash, now_iso

DEFAULT_LEASE_S = 30.0
REDELIVERY_S = 10.0  # a redelivered task's start (a fresh prefork child) before the reaper acts
MAX_ATTEMPTS = 2  # one clean restart after a lost worker, then `failed`
TERMINAL = ("succeeded", "failed", "cancelled")


class TrainingStore:
    def __init__(self, client: redis.Redis, ttl_s: int,
                 lease_s: float = DEFAULT_LEASE_S) -> None:
        self.r = client
        self.ttl_s = ttl_s
        self.lease_s = lease_s  # what this process's starts and renewals grant
        self.renew_every_s = lease_s / 6  # five renewals may fail before the lease runs out
        ending = ("end_training",)
        self._start = scripts.register(client, "training_start", ending)
        self._progress = scripts.register(client, "training_progress")
        self._finish = scripts.register(client, "training_finish", ending)
        self._cancel = scripts.register(client, "training_cancel", ending)
        self._reap = scripts.register(client, "training_reap", ending)

    def _keys(self, job_id: str) -> list[str]:
        return [training_key(job_id), TRAINING_RUNNING_KEY, training_done_key(job_id)]

    # -- the API -------------------------------------------------------------------------

    def create(self, tenant: str, request: dict[str, Any]) -> dict[str, str]:
        job_id = uuid.uuid4().hex
        now = time.time()
        record = {
            "id": job_id, "tenant": tenant, "status": "queued", "request": json.dumps(request),
            "created_at": now_iso(), "started_at": "", "finished_at": "", "updated_at": "",
            "expire_at": int(now) + self.ttl_s, "epoch": 0, "epochs": request["epochs"],
            "step": 0, "steps": 0, "loss": "", "accuracy": "", "val_loss": "",
            "val_accuracy": "", "elapsed_s": "", "eta_s": "", "history": "[]",
            "model_version": "", "activation": "", "error": "", "artifacts": "[]",
            "cancel_requested": 0, "attempts": 0, "worker": "", "lease_until": 0,
            "lease_s": self.lease_s,
        }
        with self.r.pipeline() as pipe:
            pipe.hset(training_key(job_id), mapping=record)
            pipe.expireat(training_key(job_id), record["expire_at"])
            for index in (TRAINING_JOBS_KEY, tenant_training_key(tenant)):
                pipe.zadd(index, {job_id: now})
                pipe.zremrangebyscore(index, "-inf", now - self.ttl_s)
            pipe.expire(tenant_training_key(tenant), self.ttl_s)
            pipe.execute()
        return {k: str(v) for k, v in record.items()}

    def get(self, job_id: str) -> dict[str, str] | None:
        return decode_hash(self.r.hgetall(training_key(job_id))) or None

    def list_jobs(self, limit: int, tenant: str | None = None) -> list[dict[str, str]]:
        """Newest first: every tenant's, or one tenant's."""
        index = TRAINING_JOBS_KEY if tenant is None else tenant_training_key(tenant)
        ids = self.r.zrevrange(index, 0, limit - 1)
        with self.r.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(training_key(job_id.decode()))
            return [decode_hash(raw) for raw in pipe.execute() if raw]

    def active_count(self, tenant: str, scan: int = 100) -> int:
        """The tenant's training jobs queued or running, among its `scan` newest (a quota
        check: jobs run one at a time, so the active ones are the newest)."""
        return sum(job["status"] in ("queued", "running")
                   for job in self.list_jobs(scan, tenant))

    def cancel(self, job_id: str) -> int:
        """-1 no such job, 0 already ended, 1 cancelled now, 2 the worker will stop."""
        return int(self._cancel(keys=self._keys(job_id), args=[job_id, now_iso()]))

    def artifact(self, job_id: str, name: str) -> bytes | None:
        return self.r.hget(artifacts_key(job_id), name)

    def reap(self, job_id: str, now: float | None = None) -> bool:
        """End the job if its worker stopped renewing the lease (see the module docstring)."""
        args = [job_id, now_iso(), now or time.time(), DEFAULT_LEASE_S, REDELIVERY_S]
        return self._reap(keys=self._keys(job_id), args=args) == 1

    def reap_expired(self, now: float | None = None) -> list[str]:
        now = now or time.time()
        # Lease ended; the script checks the grace.
        expired = self.r.zrangebyscore(TRAINING_RUNNING_KEY, "-inf", now)
        return [i.decode() for i in expired if self.reap(i.decode(), now)]

    # -- the worker -------------------------------------------------------------------------

    def start(self, job_id: str, worker: str, now: float | None = None) -> tuple[str, str]:
        """Claim the job: ('start', attempt), ('leased', lease_until), ('ended', status) or
        ('gone', '')."""
        now = now or time.time()
        args = [job_id, now_iso(), now, now + self.lease_s, worker, MAX_ATTEMPTS, self.lease_s]
        outcome, detail = self._start(keys=self._keys(job_id), args=args)
        return outcome.decode(), detail.decode() if isinstance(detail, bytes) else str(detail)

    def progress(self, job_id: str, fields: dict[str, Any], now: float | None = None) -> int:
        """Renew the lease and write `fields`: 1 = cancel requested, 0 = go on, -1 = stop
        (the job is no longer running: reaped or gone)."""
        args: list[Any] = [job_id, (now or time.time()) + self.lease_s, "updated_at", now_iso()]
        for name, value in fields.items():
            args += [name, value]
        return int(self._progress(keys=[training_key(job_id), TRAINING_RUNNING_KEY], args=args))

    def finish(self, job_id: str, status: str, fields: dict[str, Any] | None = None,
               artifacts: dict[str, bytes] | None = None) -> bool:
        """End a running job (status succeeded/failed/cancelled) with its artifacts, in one
        transaction. False if it was not running any more."""
        fields = dict(fields or {})
        if artifacts:
            fields["artifacts"] = json.dumps(sorted(artifacts))
        args: list[Any] = [job_id, status, now_iso()]
        for name, value in fields.items():
            args += [name, value]
        with self.r.pipeline() as pipe:
            if artifacts:
                expire_at = int(self.r.hget(training_key(job_id), "expire_at") or 0)
                pipe.hset(artifacts_key(job_id), mapping=artifacts)
                pipe.expireat(artifacts_key(job_id), expire_at or int(time.time()) + self.ttl_s)
            self._finish(keys=self._keys(job_id), args=args, client=pipe)
            return pipe.execute()[-1] == 1


def lease_expired(job: dict[str, str], now: float | None = None) -> bool:
    """A running job whose worker has not renewed it for two leases: the reaper's case."""
    grace = float(job.get("lease_s") or DEFAULT_LEASE_S) + REDELIVERY_S
    return (job["status"] == "running"
            and float(job["lease_until"] or 0) + grace < (now or time.time()))


def training_summary(job: dict[str, str]) -> dict[str, Any]:
    """A training job as clients see it (GET /v1/training-jobs/{id}), from its record."""
    def number(name: str) -> float | None:
        return float(job[name]) if job.get(name) else None

    epoch, epochs = int(job["epoch"]), int(job["epochs"])
    step, steps = int(job["step"]), int(job["steps"])
    done = (max(epoch - 1, 0) * steps + step) / (epochs * steps) if steps else 0.0
    return {
        "id": job["id"], "status": job["status"], "request": json.loads(job["request"]),
        "progress": {"epoch": epoch, "epochs": epochs, "step": step, "steps": steps,
                     "fraction": round(min(done, 1.0), 4)},
        "loss": number("loss"), "accuracy": number("accuracy"),
        "val_loss": number("val_loss"), "val_accuracy": number("val_accuracy"),
        "elapsed_s": number("elapsed_s"), "eta_s": number("eta_s"),
        "history": json.loads(job["history"] or "[]"),
        "model_version": job["model_version"] or None,
        "activation": job["activation"] or None, "error": job["error"] or None,
        "cancel_requested": job["cancel_requested"] == "1", "attempts": int(job["attempts"]),
        "artifacts": json.loads(job["artifacts"] or "[]"),
        "created_at": job["created_at"], "started_at": job["started_at"] or None,
        "finished_at": job["finished_at"] or None,
    }
