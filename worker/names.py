"""Task and queue names: the whole contract between the API (which enqueues) and the workers.

The API sends tasks by name (`celery.send_task(CLASSIFY_CHUNK, ...)`), so it never imports the
task modules, and with them torch.
"""

from __future__ import annotations

from typing import Any

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


def send_recovered(celery: Any, sweep: Any) -> None:
    """Queue what a reaper sweep found (store.recovery.Sweep): chunks to run again on their
    job's queue, webhooks to send. Both the API and the workers sweep."""
    for resend in sweep.chunks:
        celery.send_task(CLASSIFY_CHUNK, args=[resend.job_id, resend.chunk], queue=resend.queue)
    for job_id in sweep.webhooks:
        celery.send_task(SEND_WEBHOOK, args=[job_id])
