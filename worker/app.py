"""The Celery app. `celery -A worker.app worker` runs it; the API uses the same factory as a
light client that only sends tasks by name (creating the app imports no task module, no torch).
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from core.settings import Settings, available_cores, get_settings
from store.connection import redis_url
from store.keys import QUEUE_PRIORITY_SEP, QUEUE_PRIORITY_STEPS
from worker import names


def create_celery(settings: Settings) -> Celery:
    app = Celery("fashion_tagger", broker=redis_url(settings),
                 # worker.logs: JSON log lines; worker.lifecycle: heartbeat, warm-up
                 include=["worker.tasks", "worker.logs", "worker.lifecycle"])
    app.conf.update(
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=True,  # the job store in Redis is the source of truth
        task_default_queue=names.BULK_QUEUE,
        # A worker started without -Q consumes every queue, interactive first. Each queue has
        # its own exchange and key: a shared default would copy every message to all queues.
        task_queues=[Queue(name, Exchange(name), routing_key=name) for name in names.ALL_QUEUES],
        task_routes=names.TASK_ROUTES,
        # A task is acknowledged when it finishes, and a worker that dies mid-task puts it
        # back: tasks are idempotent (results are written once per item index).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_time_limit=settings.task_time_limit_s,
        # Before the hard limit: a chunk records its remaining items as errors (worker.tasks).
        task_soft_time_limit=max(1, settings.task_time_limit_s - 30),
        worker_prefetch_multiplier=1,  # one reserved task per child: no chunk waits behind another
        # Children import torch and load the model at start; 4 s (the default) is too short
        # on a loaded 2-core machine.
        worker_proc_alive_timeout=120.0,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a restarting Redis: reconnect, never give up
        worker_consumer="worker.consumer:BrokerConsumer",  # and survive losing it mid-task
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout_s,
            "queue_order_strategy": "priority",  # interactive before bulk, always
            # A list per priority step; a chunk's priority falls with its tenant's backlog
            # (worker.names.chunk_priority): fair bulk scheduling across tenants.
            "priority_steps": list(QUEUE_PRIORITY_STEPS),
            "sep": QUEUE_PRIORITY_SEP,
        },
        worker_pool=settings.worker_pool,  # CLI flags (--pool, --concurrency) override these
        worker_concurrency=settings.worker_concurrency or available_cores(),
    )
    return app


app = create_celery(get_settings())
