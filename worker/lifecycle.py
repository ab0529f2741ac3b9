"""Our part of a worker's life, beside Celery's own: a bootstep for the main process (check
and seed the model, decide the threads per inference process, reap training jobs a dead worker
left, send the heartbeat, sweep for work nobody will finish) and the warm-up of each process
that runs tasks.

worker.app lists this module in `include`, so only worker processes import it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import redis
from celery import bootsteps, signals

from core.models import SHIPPED_MODEL_PATH
from core.settings import available_cores, get_settings
from store.connection import sync_redis
from store.jobs import JobStore
from store.recovery import Reaper
from store.registry import ModelRegistry, RegistryError
from store.training import TrainingStore
from worker import names
from worker.app import app
from worker.heartbeat import Heartbeat
from worker.reaper import reaper_thread
from worker.tasks import ModelTask, seed_registry

log = logging.getLogger(__name__)


def _is_prefork(pool_cls: Any) -> bool:
    return "prefork" in getattr(pool_cls, "__module__", str(pool_cls))


class TaggerWorker(bootsteps.StartStopStep):
    """Runs in the worker's main process; for prefork, before the pool forks (so nothing here
    may touch torch or CUDA) and after it started."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        settings = get_settings()
        model = Path(settings.model_path or SHIPPED_MODEL_PATH)
        if not model.is_file():
            raise SystemExit(f"model file {model} not found: set TAGGER_MODEL_PATH (or train"
                             " and ship core/models/default.safetensors)")
        self.prefork = _is_prefork(worker.pool_cls)
        queues = set(worker.app.amqp.queues.consume_from)  # what -Q selected
        # The children inherit the app: these tell each one how to set itself up.
        worker.app.conf.tagger_pool_processes = (
            worker.concurrency if self.prefork and isinstance(worker.concurrency, int)
            else 1) or available_cores()
        worker.app.conf.tagger_serves_inference = bool(
            queues & {names.INTERACTIVE_QUEUE, names.BULK_QUEUE})
        self.trains = names.TRAINING_QUEUE in queues
        self.client = sync_redis(settings)
        try:
            seed_registry(ModelRegistry(self.client), settings)
        except redis.RedisError as exc:  # Redis not up yet: the first chunk seeds instead
            log.warning("could not seed the model registry yet: %s", exc)
        except RegistryError as exc:
            raise SystemExit(f"cannot seed the empty model registry from {model}: {exc}"
                             ) from exc
        self.heartbeat: Heartbeat | None = None
        sweeps = Reaper(JobStore(self.client, settings.result_ttl_s),
                        settings.reaper_interval_s, settings.upload_stall_s,
                        settings.chunk_lease_s, names.chunks_in_task)
        self.reaper = reaper_thread(sweeps, worker.app)

    def start(self, worker: Any) -> None:
        if not self.prefork:
            ModelTask.warm_up(worker.app)  # solo/threads: this process runs the tasks
        if self.trains:
            # Training jobs whose worker died while no API read them: end them now.
            for job_id in TrainingStore(self.client, 1).reap_expired():
                log.warning("training job %s: its worker was lost; marked failed", job_id)
        self.heartbeat = Heartbeat(self.client, worker.hostname)
        self.heartbeat.start()
        self.reaper.start()

    def stop(self, worker: Any) -> None:
        self.reaper.stop()
        if self.heartbeat is not None:
            self.heartbeat.stop()


app.steps["worker"].add(TaggerWorker)


@signals.worker_process_init.connect
def warm_up_child(**_: Any) -> None:
    ModelTask.warm_up(app)  # a prefork child, right after the fork
