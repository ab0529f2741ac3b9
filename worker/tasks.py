"""Celery tasks: thin wrappers (ids in) over worker.chunks, worker.webhooks and
worker.trainer.

This module is imported by the prefork parent too, so it must not import torch: models are
loaded by `ModelTask` in the process that runs tasks (warmed up when that process starts, see
worker.lifecycle), never in a prefork parent.

Hot reload: the script that starts a chunk fixes its job's model version (the pinned one, else
the one active now) and each chunk takes that version's predictor from a small per-process
cache. Activating a version therefore reaches the next job at once, with no restart, while
chunks in flight finish on the model they started with.
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import redis
from celery import Celery, Task
from celery.exceptions import Reject, SoftTimeLimitExceeded

from core.models import PHOTO_MODEL_PATH, SHIPPED_MODEL_PATH, onnx_beside
from core.settings import Settings, available_cores, get_settings
from store.connection import sync_redis
from store.jobs import JobStore
from store.registry import ModelRegistry
from store.training import TrainingStore
from worker import chunks, names, webhooks
from worker.app import app
from worker.fetch import FetchError
from worker.trainprogress import ProgressReporter, claim_job, lease_keeper

log = logging.getLogger(__name__)

WEBHOOK_RETRIES = 8  # backoff 1, 2, 4 ... 128 s: about 4 minutes before giving up
MAX_BACKOFF_S = 60.0


class StoreTask(Task):
    """Base task: one Redis client (and its connection pool) per process, made lazily in the
    process that runs tasks, and the stores on it."""

    _client: ClassVar[redis.Redis | None] = None

    @property
    def client(self) -> redis.Redis:
        if StoreTask._client is None:
            StoreTask._client = sync_redis(get_settings())
        return StoreTask._client

    @cached_property
    def store(self) -> JobStore:
        return JobStore(self.client, get_settings().result_ttl_s)

    @cached_property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.client)


class ModelTask(StoreTask):
    """Base task for inference: a per-process cache of predictors by registry version."""

    _models: ClassVar[Any] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()  # the threads pool may race here

    @property
    def models(self) -> Any:
        if ModelTask._models is None:
            with ModelTask._lock:
                if ModelTask._models is None:
                    from worker.model import ModelCache  # torch: see the module docstring

                    settings = get_settings()
                    threads = settings.torch_threads or model_threads(self.app, settings)
                    ModelTask._models = ModelCache(self.registry, settings, threads)
        return ModelTask._models

    @classmethod
    def warm_up(cls, app: Celery) -> None:
        """Load the active version before the first request needs it (inference workers
        only); called once in each process that will run inference tasks."""
        if not app.conf.get("tagger_serves_inference", True):
            return
        task = app.tasks[names.CLASSIFY_CHUNK]
        try:
            version = task.registry.active()
        except redis.RedisError as exc:
            log.warning("no warm-up, Redis unreachable: %s", exc)
            return
        if version:
            try:
                task.models.get(version)
            except Exception:  # the chunk that needs it reports why, per item
                log.exception("cannot load model %s", version)
        # torch and the model are loaded: a full collection would scan them again and again
        # (tens of ms, mid-task), so freeze them out of its reach.
        gc.freeze()

    def seed_registry(self) -> str | None:
        return seed_registry(self.registry, get_settings())


def model_threads(app: Celery, settings: Settings) -> int:
    """Threads per inference process: the cores shared between the pool's processes (the
    parent records how many it forks, worker.lifecycle); 2 cores, 2 children -> 1 each."""
    return max(1, available_cores() // int(app.conf.get("tagger_pool_processes", 1)))


def seed_registry(registry: ModelRegistry, settings: Settings) -> str | None:
    """An empty registry gets TAGGER_MODEL_PATH as its one, active version, else the shipped
    pair: the Fashion-MNIST model (v1) and the photo model that routes to it (v2, active).
    Each goes in with its ONNX export where one lies beside it (the lean CPU worker has no
    torch to make one). Torch-free, so a prefork parent does it before any task runs.
    Returns the active version when this call seeded, else None."""
    paths = ([Path(settings.model_path)] if settings.model_path
             else [p for p in (SHIPPED_MODEL_PATH, PHOTO_MODEL_PATH) if p.is_file()])
    seeded = registry.seed([
        (path.read_bytes(),
         onnx_beside(path).read_bytes() if onnx_beside(path).is_file() else None,
         f"seed:{path.name}") for path in paths])
    if seeded:
        log.info("model registry was empty: seeded %s from %s (%s active)",
                 ", ".join(seeded), ", ".join(p.name for p in paths), seeded[-1])
    return seeded[-1] if seeded else None


def notify_finished(celery: Celery, job: dict[str, str] | None) -> None:
    if job and job["callback_url"]:
        celery.send_task(names.SEND_WEBHOOK, args=[job["id"]])


def backoff_s(retries: int) -> float:
    """Exponential backoff with full jitter: concurrent failures do not retry in lockstep."""
    return random.uniform(0, min(MAX_BACKOFF_S, 2.0 ** retries))


@app.task(bind=True, base=ModelTask, name=names.CLASSIFY_CHUNK)
def classify_chunk(self: ModelTask, job_id: str, chunk: int) -> None:
    classify(self, [(job_id, chunk)])


@app.task(bind=True, base=ModelTask, name=names.CLASSIFY_BATCH)
def classify_batch(self: ModelTask, refs: list[tuple[str, int]]) -> None:
    """Chunks of several jobs (concurrent single images, coalesced by the API): one forward
    pass per model version instead of one task and one forward pass per image."""
    classify(self, [(job_id, chunk) for job_id, chunk in refs])


def classify(task: ModelTask, refs: list[tuple[str, int]]) -> None:
    """Every item of the chunks ends with a result: a task that raises is retried with
    backoff, then its remaining items are recorded as errors; one that runs out of time
    records them at once. Whatever this cannot record (Redis gone for good) the reaper
    queues again when the chunks' leases lapse."""
    settings = get_settings()
    # Redelivered: the worker that had these chunks died with them (kombu marks the message).
    interrupted = bool((task.request.delivery_info or {}).get("redelivered"))
    try:
        finished = chunks.classify_chunks(task.store, task.models.get, settings, refs,
                                          seed_registry=task.seed_registry,
                                          interrupted=interrupted)
    except SoftTimeLimitExceeded:
        log.warning("chunks %s ran out of time; their remaining items fail", refs)
        finished = chunks.fail_chunks(task.store, refs, "not processed: the chunk ran past"
                                      f" its time limit ({settings.task_time_limit_s} s)")
    except Exception as exc:
        retries = task.request.retries
        if retries < settings.chunk_retries:
            countdown = backoff_s(retries)
            log.warning("chunks %s failed (%s: %s); retry %d in %.1f s", refs,
                        type(exc).__name__, exc, retries + 1, countdown)
            try:  # the retry renews the leases; if it never runs, they lapse and it is resent
                task.store.renew_leases(refs, countdown + settings.chunk_lease_s)
            except redis.RedisError:
                pass
            try:
                raise task.retry(exc=exc, countdown=countdown) from exc
            except Reject as unsent:
                # Celery drops a task whose retry it could not publish (the broker away): put
                # the message back instead, or with no broker to take it, leave it
                # unacknowledged, where the reaper finds it a lease later.
                raise Reject(unsent.reason, requeue=True) from exc
        log.exception("chunks %s failed %d times; their remaining items fail", refs,
                      retries + 1)
        finished = chunks.fail_chunks(task.store, refs, "could not be processed after"
                                      f" {retries + 1} attempts ({type(exc).__name__})")
    for job in finished:
        notify_finished(task.app, job)


@app.task(bind=True, base=StoreTask, name=names.SEND_WEBHOOK, max_retries=WEBHOOK_RETRIES)
def send_webhook(self: StoreTask, job_id: str) -> None:
    """At least once: the job is in the store's webhook outbox from the moment it ended until
    this settles it, and the reaper sends this task again while it stays there."""
    settings = get_settings()
    job = self.store.get_job(job_id)
    if not job or not job["callback_url"] or job["webhook"] == "delivered":
        return  # gone, nothing to call, or a redelivered task after success
    try:
        webhooks.deliver(job["callback_url"], job, settings.webhook_secret,
                         settings.fetch_timeout_s, settings.fetch_deadline_s,
                         settings.fetch_allow_private)
    except FetchError as exc:
        if self.request.retries >= WEBHOOK_RETRIES:
            log.warning("webhook for job %s failed for good: %s", job_id, exc)
            self.store.webhook_settled(job_id, f"failed: {exc}")
            return
        countdown = 2 ** self.request.retries
        self.store.webhook_due(job_id, time.time() + countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc
    self.store.webhook_settled(job_id, "delivered")


TRAINING_LIMIT_S = get_settings().training_time_limit_s


@app.task(bind=True, base=StoreTask, name=names.TRAIN_MODEL, time_limit=TRAINING_LIMIT_S,
          soft_time_limit=max(1, TRAINING_LIMIT_S - 60))
def train_model(self: StoreTask, job_id: str) -> None:
    """One training job (worker.trainer); the training worker runs one at a time. The job is
    claimed and its lease kept before torch is imported: a redelivery restarts it promptly."""
    settings = get_settings()
    store = TrainingStore(self.client, settings.result_ttl_s, settings.training_lease_s)
    if claim_job(store, job_id, self.request.hostname or "worker") is None:
        return
    reporter = ProgressReporter(store, job_id)
    with lease_keeper(reporter):
        from worker.trainer import run_claimed_job  # torch: see the module docstring

        run_claimed_job(store, reporter, settings, job_id)
