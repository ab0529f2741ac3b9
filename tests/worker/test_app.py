"""The Celery app's reliability settings, and the prefork parent staying torch-free."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from core.settings import Settings
from worker import names
from worker.app import create_celery


def test_reliability_settings():
    conf = create_celery(Settings(task_time_limit_s=600, broker_visibility_timeout_s=900)).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.broker_transport_options["visibility_timeout"] == 900 > conf.task_time_limit
    assert conf.broker_transport_options["queue_order_strategy"] == "priority"
    assert conf.worker_proc_alive_timeout >= 60
    assert conf.worker_consumer == "worker.consumer:BrokerConsumer"  # outlives a lost broker


def test_webhooks_have_their_own_queue_and_workers_consume_it_by_default():
    from cli.stack import DEFAULT_QUEUES

    assert names.TASK_ROUTES[names.SEND_WEBHOOK]["queue"] == names.WEBHOOKS_QUEUE
    assert DEFAULT_QUEUES.split(",") == list(names.ALL_QUEUES)


def test_the_worker_parent_never_imports_torch():
    # What `celery -A worker.app worker` imports before forking: the app and its tasks.
    code = ("import sys, worker.app, worker.tasks; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_settings_refuse_a_visibility_timeout_shorter_than_a_task():
    with pytest.raises(ValidationError, match="VISIBILITY_TIMEOUT"):
        Settings(task_time_limit_s=600, broker_visibility_timeout_s=300)
    with pytest.raises(ValidationError, match="TAGGER_API_KEYS"):
        Settings(env="production", webhook_secret="real-secret", api_keys="")


def test_each_queue_has_its_own_exchange_and_key():
    # A shared exchange and routing key would deliver every message to every queue.
    queues = create_celery(Settings()).amqp.queues
    assert list(queues) == list(names.ALL_QUEUES)  # also the polling order: interactive first
    for name, queue in queues.items():
        assert queue.exchange.name == queue.routing_key == name


def test_a_chunk_lands_in_the_list_of_its_priority_and_workers_poll_by_priority(redis_url):
    """kombu's Redis transport: one list per priority step (store.keys.queue_key); a worker's
    BRPOP names every queue's priority-0 list first, so a lower step waits behind every
    queue's higher one: interactive (always 0) before any bulk chunk of a big backlog."""
    import redis

    from store.keys import queue_key

    celery = create_celery(Settings(redis_url=redis_url))
    conf = celery.conf.broker_transport_options
    assert conf["priority_steps"] == list(range(10))
    r = redis.Redis.from_url(redis_url)
    names.send_chunk(celery, "job-a", 9, names.BULK_QUEUE, backlog_items=100_000)
    names.send_chunk(celery, "job-b", 0, names.BULK_QUEUE, backlog_items=0)
    names.send_chunk(celery, "job-c", 0, names.INTERACTIVE_QUEUE, backlog_items=100_000)
    assert r.llen(queue_key(names.BULK_QUEUE, 9)) == 1  # 100,000 items ahead: the last step
    assert r.llen(queue_key(names.BULK_QUEUE, 0)) == 1  # nothing ahead: the first
    assert r.llen(queue_key(names.INTERACTIVE_QUEUE, 0)) == 1  # single images: always 0
    with celery.connection_for_read() as connection:
        channel = connection.default_channel
        order = [channel._q_for_pri(q, p) for p in channel.priority_steps
                 for q in names.INFERENCE_QUEUES]
    assert order.index(queue_key(names.BULK_QUEUE, 0)) < order.index(
        queue_key(names.BULK_QUEUE, 9))
    assert [names.chunk_priority(n) for n in (0, 255, 256, 512, 1024, 10**6)] == [
        0, 0, 1, 2, 3, 9]
