"""Every Redis key and channel the service uses: the only module that knows their names.

Jobs (every key expires with its job, at the job's `expire_at`):

    tagger:job:{id}               hash    the job record; counters done/failed/skipped
    tagger:job:{id}:items         list    item i -> JSON {item_id, filename, url?, error?}
    tagger:job:{id}:input:{c}     hash    item index -> image bytes; deleted when chunk c is done
    tagger:job:{id}:results       hash    item index -> result item JSON (written once: HSETNX)
    tagger:job:{id}:done          list    a token pushed when the job ends (waiters block on it)
    tagger:job:{id}:pending       set     chunks written but not yet recorded
    tagger:tenant:{t}:jobs        zset    job id scored by creation time (newest-first listing)
    tagger:idem:{t}:{sha256(k)}   string  Idempotency-Key k -> job id
    tagger:jobs:done              channel an ended job's record (and one-item result), as JSON

What the reaper watches (store.recovery; entries leave when their job ends):

    tagger:jobs:active            zset    queued/running job id -> creation time
    tagger:jobs:uploading         zset    unsealed job id -> time its upload last wrote
    tagger:jobs:deadlines         zset    job id -> its deadline (unix)
    tagger:chunks:leases          zset    "{job id}:{chunk}" -> lease expiry (unix), renewed
                                          by the worker process running the chunk
    tagger:chunks:resends         zset    "{job id}:{chunk}" -> when the reaper decided to
                                          send it again, until its sender confirms the send
    tagger:webhooks:outbox        zset    job id -> when its webhook is due (until delivered)
    tagger:usage                  hash    what the queues hold now, kept exact by the scripts
                                          that change it: "{tenant}|active_jobs" (bulk jobs
                                          queued or running), "{tenant}|queued_items" (items
                                          written, not yet done), "{tenant}|input_bytes" and
                                          "input_bytes" (the tenant's and every job's image
                                          bytes still waiting)
    tagger:ratelimit:...          -       the `limits` library's request windows per tenant
    tagger:reaper:lock            string  held by the one process sweeping right now
    tagger:reaper:resent          zset    broker deliveries already sent again -> when
    tagger:redis:run_id           string  the Redis run_id the last sweep saw (restarts)

Items of chunk c are indices [c * chunk_size, (c + 1) * chunk_size): a task message carries
only (job_id, chunk).

Workers, metrics, the model registry, training jobs and datasets: see the sections below.
Celery's own queues are kombu's lists named after each queue (`queue_key`).
"""

from __future__ import annotations

import hashlib

PREFIX = "tagger"

# -- jobs -----------------------------------------------------------------------------------


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def items_key(job_id: str) -> str:
    return f"{job_key(job_id)}:items"


def input_prefix(job_id: str) -> str:
    """What a chunk number completes into its input key (scripts build them this way)."""
    return f"{job_key(job_id)}:input:"


def input_key(job_id: str, chunk: int) -> str:
    return f"{input_prefix(job_id)}{chunk}"


def results_key(job_id: str) -> str:
    return f"{job_key(job_id)}:results"


def done_key(job_id: str) -> str:
    return f"{job_key(job_id)}:done"


def pending_key(job_id: str) -> str:
    return f"{job_key(job_id)}:pending"


def tenant_jobs_key(tenant: str) -> str:
    return f"{PREFIX}:tenant:{tenant}:jobs"


def idempotency_key(tenant: str, key: str) -> str:
    return f"{PREFIX}:idem:{tenant}:{hashlib.sha256(key.encode()).hexdigest()}"


DONE_CHANNEL = f"{PREFIX}:jobs:done"

ACTIVE_JOBS_KEY = f"{PREFIX}:jobs:active"
UPLOADING_KEY = f"{PREFIX}:jobs:uploading"
DEADLINES_KEY = f"{PREFIX}:jobs:deadlines"
LEASES_KEY = f"{PREFIX}:chunks:leases"
# Chunks the reaper decided to send again whose send nobody confirmed yet: a sweep whose sends
# failed (the broker away) or whose process died leaves them for a later sweep.
RESENDS_KEY = f"{PREFIX}:chunks:resends"
WEBHOOK_OUTBOX_KEY = f"{PREFIX}:webhooks:outbox"
REAPER_LOCK_KEY = f"{PREFIX}:reaper:lock"
# Deliveries the reaper has already sent again (delivery tag -> when), so each is resent once.
RESENT_DELIVERIES_KEY = f"{PREFIX}:reaper:resent"
# kombu's Redis transport: messages delivered to a consumer and not yet acknowledged
# (delivery tag -> [payload, exchange, routing key]), and when each was delivered.
KOMBU_UNACKED_KEY = "unacked"
KOMBU_UNACKED_INDEX_KEY = "unacked_index"
REDIS_RUN_ID_KEY = f"{PREFIX}:redis:run_id"
USAGE_KEY = f"{PREFIX}:usage"
RATE_LIMIT_PREFIX = f"{PREFIX}:ratelimit"  # the `limits` library names its keys under it


def usage_field(tenant: str, name: str) -> str:
    """A tenant's counter in USAGE_KEY: "active_jobs", "queued_items" or "input_bytes"
    (scripts build them this way: tenant .. '|' .. name)."""
    return f"{tenant}|{name}"


INPUT_BYTES_FIELD = "input_bytes"  # USAGE_KEY: image bytes of every job still in Redis


def lease_member(job_id: str, chunk: int) -> str:
    """A chunk's member in LEASES_KEY (scripts build them this way)."""
    return f"{job_id}:{chunk}"


def parse_lease_member(member: str) -> tuple[str, int]:
    job_id, _, chunk = member.rpartition(":")
    return job_id, int(chunk)

# -- workers --------------------------------------------------------------------------------

WORKERS_KEY = f"{PREFIX}:workers"  # zset: worker hostname scored by its last heartbeat


# kombu's Redis transport keeps a queue's waiting messages in one list per priority step:
# the queue's own name for priority 0, `{queue}\x06\x16{p}` for the others (kombu's default
# separator). A worker's BRPOP names them by step, then by queue: every queue's priority-0 list
# before any priority-1 list. worker.app configures these steps; worker.names picks a chunk's.
QUEUE_PRIORITY_STEPS = tuple(range(10))
QUEUE_PRIORITY_SEP = "\x06\x16"


def queue_key(queue: str, priority: int = 0) -> str:
    """The list holding `queue`'s messages of one priority step."""
    return f"{queue}{QUEUE_PRIORITY_SEP}{priority}" if priority else queue


def queue_keys(queue: str) -> list[str]:
    """Every list of `queue`, highest priority first (its depth is their lengths' sum)."""
    return [queue_key(queue, p) for p in QUEUE_PRIORITY_STEPS]


# -- metrics (counters: they never expire) --------------------------------------------------
#   tagger:metrics:hist:{name}   hash  "{queue}|{i}" -> count in bucket i, "{queue}|sum|count"
#   tagger:metrics:items         hash  "{queue}|{status}" -> items processed
#   tagger:metrics:jobs          hash  state -> jobs that entered it (queued = created)
#   tagger:metrics:jobs_active   hash  queued/running -> jobs in that state now
#   tagger:metrics:models        hash  model version -> unix time a worker last used it

METRICS_PREFIX = f"{PREFIX}:metrics"
METRICS_ITEMS_KEY = f"{METRICS_PREFIX}:items"
METRICS_JOBS_KEY = f"{METRICS_PREFIX}:jobs"
METRICS_JOBS_ACTIVE_KEY = f"{METRICS_PREFIX}:jobs_active"
METRICS_MODELS_KEY = f"{METRICS_PREFIX}:models"


def metrics_hist_key(name: str) -> str:
    return f"{METRICS_PREFIX}:hist:{name}"


# -- the model registry (nothing expires: versions are kept for rollback) -------------------
#   tagger:models:seq             string  INCR counter: version n is named "v{n}"
#   tagger:models                 zset    version -> n (listing order)
#   tagger:models:active          string  the version new jobs are served with
#   tagger:models:activations     list    JSON {version, at}, newest first (the last 100)
#   tagger:model:{v}              hash    version, registered_at, source, size_bytes, meta JSON
#   tagger:model:{v}:safetensors  string  the checkpoint
#   tagger:model:{v}:onnx         string  the same model as ONNX (set once)

MODELS_SEQ_KEY = f"{PREFIX}:models:seq"
MODELS_INDEX_KEY = f"{PREFIX}:models"
ACTIVE_MODEL_KEY = f"{PREFIX}:models:active"
ACTIVATIONS_KEY = f"{PREFIX}:models:activations"
# The registering script names a new version's keys from the version it allocates:
# MODEL_PREFIX + version (+ ":safetensors" / ":onnx"), as the functions below do.
MODEL_PREFIX = f"{PREFIX}:model:"


def model_key(version: str) -> str:
    return f"{MODEL_PREFIX}{version}"


def checkpoint_key(version: str) -> str:
    return f"{model_key(version)}:safetensors"


def onnx_key(version: str) -> str:
    return f"{model_key(version)}:onnx"


# -- training jobs (each expires with its job; the model it made lives on in the registry) --
#   tagger:training:{id}              hash    the record: status, request, progress, history
#   tagger:training:{id}:artifacts    hash    name -> bytes (curves.png, confusion.png, ...)
#   tagger:training:{id}:done         list    a token pushed when the job ends
#   tagger:training:jobs              zset    id scored by creation time (listing)
#   tagger:training:running           zset    id scored by its lease expiry (the reaper's view)
#   tagger:tenant:{t}:training        zset    the tenant's training job ids by creation time

TRAINING_JOBS_KEY = f"{PREFIX}:training:jobs"
TRAINING_RUNNING_KEY = f"{PREFIX}:training:running"


def training_key(job_id: str) -> str:
    return f"{PREFIX}:training:{job_id}"


def artifacts_key(job_id: str) -> str:
    return f"{training_key(job_id)}:artifacts"


def training_done_key(job_id: str) -> str:
    return f"{training_key(job_id)}:done"


def tenant_training_key(tenant: str) -> str:
    return f"{PREFIX}:tenant:{tenant}:training"


# -- datasets (kept until deleted: training jobs and models refer to them by id) ------------
#   tagger:datasets               zset    id scored by creation time (listing)
#   tagger:dataset:{id}           hash    id, name, tenant, created_at, labels, counts, ...
#   tagger:dataset:{id}:images    hash    "{label index}:{n}" -> image bytes
#   tagger:tenant:{t}:datasets    zset    the tenant's dataset ids by creation time

DATASETS_KEY = f"{PREFIX}:datasets"


def dataset_key(dataset_id: str) -> str:
    return f"{PREFIX}:dataset:{dataset_id}"


def dataset_images_key(dataset_id: str) -> str:
    return f"{dataset_key(dataset_id)}:images"


def tenant_datasets_key(tenant: str) -> str:
    return f"{PREFIX}:tenant:{tenant}:datasets"
