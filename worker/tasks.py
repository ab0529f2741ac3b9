"""Celery tasks: thin wrappers (ids in) over worker.chunks and worker.webhooks.

This module is imported by the prefork parent too, so it must not import torch: the model is
loaded by `ModelTask.predictor` in the process that runs tasks (warmed up by
`worker_process_init` in each prefork child, or at `worker_ready` for the solo/threads pools,
where the main process runs the tasks itself and nothing forks after it touched CUDA).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

from celery import Celery, Task, signals

from core.models import SHIPPED_MODEL_PATH
from core.settings import available_cores, get_settings
from worker import chunks, names, webhooks
from worker.app import app
from worker.connection import sync_redis
from worker.fetch import FetchError
from worker.heartbeat import Heartbeat
from worker.jobstore import JobStore

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
    """Base task for inference: the Predictor is loaded once per process, on first use."""

    _predictor: ClassVar[Any] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()  # the threads pool may race here
    pool_processes: ClassVar[int] = 1  # set in the parent by worker_init, inherited by forks

    @property
    def predictor(self) -> Any:
        if ModelTask._predictor is None:
            with ModelTask._lock:
                if ModelTask._predictor is None:
                    from worker.model import load_predictor  # torch: see the module docstring

                    settings = get_settings()
                    # Share the cores between prefork children: 2 cores, 2 children -> 1 each.
                    threads = settings.torch_threads or max(
                        1, available_cores() // ModelTask.pool_processes)
                    ModelTask._predictor = load_predictor(settings, threads)
        return ModelTask._predictor


def notify_finished(celery: Celery, job: dict[str, str] | None) -> None:
    if job and job["callback_url"]:
        celery.send_task(names.SEND_WEBHOOK, args=[job["id"]])


def predictor_or_stand_in(task: ModelTask) -> Any:
    try:
        return task.predictor
    except Exception as exc:  # a corrupt or incompatible file: end the items, never hang a job
        log.exception("cannot load the model")
        return chunks.UnavailablePredictor(f"the worker cannot load its model: {exc}")


@app.task(bind=True, base=ModelTask, name=names.CLASSIFY_CHUNK)
def classify_chunk(self: ModelTask, job_id: str, chunk: int) -> None:
    predictor = predictor_or_stand_in(self)
    finished = chunks.classify_chunk(self.store, predictor, get_settings(), job_id, chunk)
    notify_finished(self.app, finished)


@app.task(bind=True, base=ModelTask, name=names.CLASSIFY_ONE_NAIVE)
def classify_one_naive(self: ModelTask, job_id: str, index: int) -> None:
    """BENCHMARK BASELINE ONLY: one task per image, no batching (what batching is measured
    against). The service never sends it."""
    predictor = predictor_or_stand_in(self)
    finished = chunks.classify_one(self.store, predictor, get_settings(), job_id, index)
    notify_finished(self.app, finished)


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


@signals.worker_process_init.connect
def warm_up_child(**_: Any) -> None:
    # A prefork child: load the model now so the first request does not pay for it.
    predictor_or_stand_in(classify_chunk)


@signals.worker_ready.connect
def on_worker_ready(sender: Any, **_: Any) -> None:
    global _heartbeat
    if not _is_prefork(sender.pool.__class__):
        predictor_or_stand_in(classify_chunk)  # solo/threads: this process runs the tasks
    _heartbeat = Heartbeat(classify_chunk.store, sender.hostname)
    _heartbeat.start()


@signals.worker_shutdown.connect
def on_worker_shutdown(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
