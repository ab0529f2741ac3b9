"""Task and queue names: the whole contract between the API (which enqueues) and the workers.

The API sends tasks by name (`celery.send_task(CLASSIFY_CHUNK, ...)`), so it never imports the
task modules, and with them torch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from store.keys import QUEUE_PRIORITY_STEPS

# Queues, in the order a worker polls them: Redis BRPOP tries its keys in order, so with the
# "priority" queue order strategy a free worker always takes an interactive task first.
INTERACTIVE_QUEUE = "interactive"  # single images (POST /v1/classify)
BULK_QUEUE = "bulk"  # chunks of bulk jobs
TRAINING_QUEUE = "training"  # (re)training runs: one at a time, on their own worker
WEBHOOKS_QUEUE = "webhooks"  # completion callbacks; network-bound, kept off the model queues
ALL_QUEUES = (INTERACTIVE_QUEUE, BULK_QUEUE, TRAINING_QUEUE, WEBHOOKS_QUEUE)
# `fashion-tagger up` splits them: an inference worker, and a training worker (concurrency 1)
# so that a long training run never delays tagging.
INFERENCE_QUEUES = (INTERACTIVE_QUEUE, BULK_QUEUE, WEBHOOKS_QUEUE)
TRAINING_QUEUES = (TRAINING_QUEUE,)

CLASSIFY_CHUNK = "tagger.classify_chunk"  # args: job_id, chunk index
CLASSIFY_BATCH = "tagger.classify_batch"  # args: [[job_id, chunk index], ...]: one forward pass
SEND_WEBHOOK = "tagger.send_webhook"  # args: job_id
TRAIN_MODEL = "tagger.train_model"  # args: training job id

# The queue is picked per call (a single image and a bulk chunk run the same task), so routes
# only name the tasks whose queue never changes.
TASK_ROUTES = {
    SEND_WEBHOOK: {"queue": WEBHOOKS_QUEUE},
    TRAIN_MODEL: {"queue": TRAINING_QUEUE},
}


# Fair bulk scheduling: kombu's Redis transport keeps a list per priority step
# (store.keys.QUEUE_PRIORITY_STEPS, 0 served first) and a worker takes the highest priority
# of any queue first. A chunk's priority falls as its tenant's backlog grows, so the chunks of
# a tenant with little waiting overtake another tenant's big backlog: a small job starts
# within about one chunk's time even behind 100,000 queued items (python -m benchmarks abuse).
PRIORITY_UNIT_ITEMS = 256  # one level per doubling of the backlog, counted in these


def chunk_priority(backlog_items: int) -> int:
    """0 when the tenant has fewer than PRIORITY_UNIT_ITEMS items waiting ahead of this chunk,
    one more each time that backlog doubles, at most the last step."""
    return min(QUEUE_PRIORITY_STEPS[-1], (backlog_items // PRIORITY_UNIT_ITEMS).bit_length())


def send_chunk(celery: Any, job_id: str, chunk: int, queue: str, backlog_items: int) -> None:
    """Queue one chunk of a job. The API's first send and the reaper's re-sends both come here,
    so a chunk sent again keeps the rule (its priority from its tenant's backlog now)."""
    priority = chunk_priority(backlog_items) if queue == BULK_QUEUE else 0
    celery.send_task(CLASSIFY_CHUNK, args=[job_id, chunk], queue=queue, priority=priority)


def chunks_in_task(task: str, args: list) -> list[tuple[str, int]]:
    """The (job id, chunk) pairs a task message processes (the reaper reads the broker's
    unacknowledged messages with this)."""
    if task == CLASSIFY_CHUNK:
        return [(str(args[0]), int(args[1]))]
    if task == CLASSIFY_BATCH:
        return [(str(job_id), int(chunk)) for job_id, chunk in args[0]]
    return []


def send_recovered(celery: Any, sweep: Any) -> None:
    """Queue what a reaper sweep found (store.recovery.Sweep): chunks to run again on their
    job's queue, webhooks to send. Both the API and the workers sweep."""
    for resend in sweep.chunks:
        send_chunk(celery, resend.job_id, resend.chunk, resend.queue, resend.backlog)
    for job_id in sweep.webhooks:
        celery.send_task(SEND_WEBHOOK, args=[job_id])


def tenant_webhook_secret(master: str, tenant: str) -> str:
    """The secret a tenant's webhooks are signed with (Standard Webhooks, `whsec_` + base64):
    derived from TAGGER_WEBHOOK_SECRET, so none is stored, and each tenant's differs, so no
    tenant can sign (forge) another's callbacks. The API shows it to its tenant
    (GET /v1/webhook-secret); the workers sign with it (worker.webhooks)."""
    key = hmac.new(master.encode(), b"fashion-tagger webhook v1\x00" + tenant.encode(),
                   hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(key).decode()
