"""Celery tasks: thin wrappers (ids in) over worker.chunks, worker.webhooks and
worker.trainer.

This module is imported by the prefork parent too, so it must not import torch: models are
loaded by `ModelTask.models` in the process that runs tasks (the active one warmed up by
`worker_process_init` in each prefork child, or at `worker_ready` for the solo/threads pools,
where the main process runs the tasks itself and nothing forks after it touched CUDA).

Hot reload: each chunk asks the registry which version its job uses (one script call: the
job's pinned or already-fixed version, else the active one), and takes that predictor from
a small per-process cache. Activating a version therefore reaches the next job at once, with
no restart, while chunks in flight finish on the model they started with.
"""

from __future__ import annotations

import gc
import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

import redis
from celery import Celery, Task, signals

from core.models import SHIPPED_MODEL_PATH
from core.settings import available_cores, get_settings
from worker import chunks, names, webhooks
from worker.app import app
from worker.connection import sync_redis
from worker.fetch import FetchError
from worker.heartbeat import Heartbeat
from worker.jobstore import JobStore
from worker.registry import ModelRegistry, RegistryError
from worker.trainjobs import TrainingStore
from worker.trainprogress import LeaseKeeper, ProgressReporter, claim_job

log = logging.getLogger(__name__)

WEBHOOK_RETRIES = 8  # backoff 1, 2, 4 ... 128 s: about 4 minutes before giving up


class StoreTask(Task):
    """Base task with one JobStore (one Redis connection pool) per process, made lazily."""

    _store: ClassVar[JobStore | None] = None

    @property
    def store(self) -> JobStore:
        if StoreTask._store is None:
            settings = get_settings()
            StoreTask._store = JobStore(sync_redis(settings), settings.result_ttl_s)
        return StoreTask._store


class ModelTask(StoreTask):
    """Base task for inference: a per-process cache of predictors by registry version."""

    _models: ClassVar[Any] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()  # the threads pool may race here
    pool_processes: ClassVar[int] = 1  # set in the parent by worker_init, inherited by forks
    serves_inference: ClassVar[bool] = True  # False on a training-only worker: no warm-up

    _registry: ClassVar[ModelRegistry | None] = None

    @property
    def registry(self) -> ModelRegistry:
        if ModelTask._registry is None:
            ModelTask._registry = ModelRegistry(self.store.r)
        return ModelTask._registry

    @property
    def models(self) -> Any:
        if ModelTask._models is None:
            with ModelTask._lock:
                if ModelTask._models is None:
                    from worker.model import ModelCache  # torch: see the module docstring

                    settings = get_settings()
                    # Share the cores between prefork children: 2 cores, 2 children -> 1 each.
                    threads = settings.torch_threads or max(
                        1, available_cores() // ModelTask.pool_processes)
                    ModelTask._models = ModelCache(self.registry, settings, threads)
        return ModelTask._models


def notify_finished(celery: Celery, job: dict[str, str] | None) -> None:
    if job and job["callback_url"]:
        celery.send_task(names.SEND_WEBHOOK, args=[job["id"]])


def seed_registry(registry: ModelRegistry) -> str | None:
    """An empty registry gets TAGGER_MODEL_PATH (else the shipped model) as its first, active
    version; torch-free, so the prefork parent does it before any task runs."""
    path = Path(get_settings().model_path or SHIPPED_MODEL_PATH)
    version = registry.register(path.read_bytes(), f"seed:{path.name}", only_if_empty=True)
    if version:
        log.info("model registry was empty: seeded %s from %s", version, path)
    return version


def predictors_for_jobs(task: ModelTask, job_ids: list[str]) -> list[Any]:
    """The predictor of each job's model version (fixed by its first chunk), in one round
    trip; a stand-in that explains the problem where there is none to load."""
    claims = task.registry.claim_for_jobs(job_ids)
    if any(found and version is None for found, version in claims):
        # No worker could seed the registry yet (first start).
        try:
            seed_registry(task.registry)
        except (OSError, RegistryError) as exc:  # end the items with the reason, never hang
            log.exception("cannot seed the model registry")
            reason = f"no model registered, and seeding failed: {exc}"
            return [chunks.UnavailablePredictor(reason)] * len(job_ids)
        claims = task.registry.claim_for_jobs(job_ids)
    return [predictor_or_stand_in(task, version) if found and version is not None
            # the job is gone: the chunk logic drops it
            else chunks.UnavailablePredictor("no model version for this job")
            for found, version in claims]


def predictor_or_stand_in(task: ModelTask, version: str) -> Any:
    try:
        return task.models.get(version)
    except Exception as exc:  # a corrupt or incompatible file: end the items, never hang a job
        log.exception("cannot load model %s", version)
        return chunks.UnavailablePredictor(f"the worker cannot load model {version}: {exc}")


@app.task(bind=True, base=ModelTask, name=names.CLASSIFY_CHUNK)
def classify_chunk(self: ModelTask, job_id: str, chunk: int) -> None:
    classify(self, [(job_id, chunk)])


@app.task(bind=True, base=ModelTask, name=names.CLASSIFY_BATCH)
def classify_batch(self: ModelTask, refs: list[tuple[str, int]]) -> None:
    """Chunks of several jobs (concurrent single images, coalesced by the API): one forward
    pass per model version instead of one task and one forward pass per image."""
    classify(self, [(job_id, chunk) for job_id, chunk in refs])


def classify(task: ModelTask, refs: list[tuple[str, int]]) -> None:
    finished = chunks.classify_chunks(task.store, lambda ids: predictors_for_jobs(task, ids),
                                      get_settings(), refs)
    for job in finished:
        notify_finished(task.app, job)


@app.task(bind=True, base=StoreTask, name=names.SEND_WEBHOOK, max_retries=WEBHOOK_RETRIES)
def send_webhook(self: StoreTask, job_id: str) -> None:
    settings = get_settings()
    job = self.store.get_job(job_id)
    if not job or not job["callback_url"] or job["webhook"] == "delivered":
        return  # gone, nothing to call, or a redelivered task after success
    try:
        webhooks.deliver(job["callback_url"], job, settings.webhook_secret,
                         settings.fetch_timeout_s, settings.fetch_allow_private)
    except FetchError as exc:
        if self.request.retries >= WEBHOOK_RETRIES:
            log.warning("webhook for job %s failed for good: %s", job_id, exc)
            self.store.set_field(job_id, "webhook", f"failed: {exc}")
            return
        raise self.retry(exc=exc, countdown=2 ** self.request.retries) from exc
    self.store.set_field(job_id, "webhook", "delivered")


TRAINING_LIMIT_S = get_settings().training_time_limit_s


@app.task(bind=True, base=StoreTask, name=names.TRAIN_MODEL, time_limit=TRAINING_LIMIT_S,
          soft_time_limit=max(1, TRAINING_LIMIT_S - 60))
def train_model(self: StoreTask, job_id: str) -> None:
    """One training job (worker.trainer); the training worker runs one at a time. The job is
    claimed and its lease kept before torch is imported: a redelivery restarts it promptly."""
    settings = get_settings()
    store = TrainingStore(self.store.r, settings.result_ttl_s, settings.training_lease_s)
    if claim_job(store, job_id, self.request.hostname or "worker") is None:
        return
    reporter = ProgressReporter(store, job_id)
    with LeaseKeeper(reporter):
        from worker.trainer import run_claimed_job  # torch: see the module docstring

        run_claimed_job(store, reporter, settings, job_id)


# -- worker process lifecycle ------------------------------------------------------------

_heartbeat: Heartbeat | None = None


def _is_prefork(pool_cls: Any) -> bool:
    return "prefork" in getattr(pool_cls, "__module__", str(pool_cls))


@signals.worker_init.connect
def check_model_and_remember_pool_size(sender: Any, **_: Any) -> None:
    # Runs in the parent before the pool forks: check and record, never load anything here.
    model = get_settings().model_path or SHIPPED_MODEL_PATH
    if not Path(model).is_file():
        raise SystemExit(f"model file {model} not found: set TAGGER_MODEL_PATH (or train and"
                         " ship core/models/default.safetensors)")
    concurrency = sender.concurrency if isinstance(sender.concurrency, int) else available_cores()
    ModelTask.pool_processes = concurrency if _is_prefork(sender.pool_cls) else 1
    queues = set(sender.app.amqp.queues.consume_from)  # what -Q selected
    ModelTask.serves_inference = bool(queues & {names.INTERACTIVE_QUEUE, names.BULK_QUEUE})
    try:
        seed_registry(classify_chunk.registry)
    except redis.RedisError as exc:  # Redis not up yet: the first chunk seeds instead
        log.warning("could not seed the model registry yet: %s", exc)
    except RegistryError as exc:
        raise SystemExit(f"cannot seed the empty model registry from {model}: {exc}") from exc


def warm_up() -> None:
    """Load the active version before the first request needs it (inference workers only)."""
    if not ModelTask.serves_inference:
        return
    try:
        version = classify_chunk.registry.active()
    except redis.RedisError as exc:
        log.warning("no warm-up, Redis unreachable: %s", exc)
        return
    if version:
        predictor_or_stand_in(classify_chunk, version)
    # torch and the model are loaded: a full collection would scan them again and again (tens
    # of ms, mid-task), so freeze them out of its reach.
    gc.freeze()


@signals.worker_process_init.connect
def warm_up_child(**_: Any) -> None:
    warm_up()  # a prefork child


@signals.worker_ready.connect
def on_worker_ready(sender: Any, **_: Any) -> None:
    global _heartbeat
    if not _is_prefork(sender.pool.__class__):
        warm_up()  # solo/threads: this process runs the tasks
    if names.TRAINING_QUEUE in sender.app.amqp.queues.consume_from:
        # Training jobs whose worker died while no API read them: end them now.
        for job_id in TrainingStore(classify_chunk.store.r, 1).reap_expired():
            log.warning("training job %s: its worker was lost; marked failed", job_id)
    _heartbeat = Heartbeat(classify_chunk.store, sender.hostname)
    _heartbeat.start()


@signals.worker_shutdown.connect
def on_worker_shutdown(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
