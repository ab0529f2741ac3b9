"""Service metrics kept in Redis, so that the API's `/metrics` shows what the workers did.

Workers are many processes on many hosts and the API is the one place Prometheus scrapes, so
workers add their numbers to shared Redis hashes (one pipelined round trip per chunk: a few
HINCRBYs, cheap next to a forward pass) and the API reads them at scrape time, together with
the queue depths, the live workers and the registry's active version. Key layout: store.keys.

The job counters change inside the job store's own writes and Lua scripts (store.jobs),
atomically with the state change they count.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from store.keys import (
    ACTIVE_MODEL_KEY,
    METRICS_ITEMS_KEY,
    METRICS_JOBS_ACTIVE_KEY,
    METRICS_JOBS_KEY,
    METRICS_MODELS_KEY,
    QUEUE_PRIORITY_STEPS,
    WORKERS_KEY,
    metrics_hist_key,
    queue_keys,
)
from store.workers import HEARTBEAT_TTL_S

log = logging.getLogger(__name__)

# discarded: removed because its upload failed half-way (never a status clients see)
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "discarded")
ACTIVE_STATES = ("queued", "running")

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# name -> (bucket upper bounds, help text)
HISTOGRAMS: dict[str, tuple[tuple[float, ...], str]] = {
    "batch_size": ((1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
                   "images per batched forward pass (one per chunk)"),
    "preprocess_seconds": (_SECONDS, "decode and preprocess time of one chunk"),
    "inference_seconds": (_SECONDS, "forward pass time of one chunk"),
}


@dataclass
class ChunkStats:
    """What one chunk measured; filled in by the worker that ran it."""

    queue: str
    model_version: str = ""
    batch_size: int = 0  # images that went into the predictor (decoded or not)
    preprocess_s: float | None = None
    inference_s: float | None = None


def _observe(pipe: redis.client.Pipeline, name: str, label: str, value: float) -> None:
    bounds, _ = HISTOGRAMS[name]
    key = metrics_hist_key(name)
    pipe.hincrby(key, f"{label}|{bisect.bisect_left(bounds, value)}", 1)
    pipe.hincrbyfloat(key, f"{label}|sum", value)
    pipe.hincrby(key, f"{label}|count", 1)


def record_chunk(client: redis.Redis, stats: ChunkStats, statuses: list[str]) -> None:
    """Add one chunk's numbers (one round trip)."""
    record_chunks(client, [(stats, statuses)])


def record_chunks(client: redis.Redis, chunks: list[tuple[ChunkStats, list[str]]]) -> None:
    """Add several chunks' numbers, each (stats, item statuses), in one round trip. A failure
    is logged, never raised: metrics must not fail the chunks whose results are stored."""
    try:
        with client.pipeline(transaction=False) as pipe:
            for stats, statuses in chunks:
                _queue_chunk(pipe, stats, statuses)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not record chunk metrics: %s", exc)


def _queue_chunk(pipe: redis.client.Pipeline, stats: ChunkStats, statuses: list[str]) -> None:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    for status, n in counts.items():
        pipe.hincrby(METRICS_ITEMS_KEY, f"{stats.queue}|{status}", n)
    if stats.batch_size:
        _observe(pipe, "batch_size", stats.queue, stats.batch_size)
    if stats.preprocess_s is not None:
        _observe(pipe, "preprocess_seconds", stats.queue, stats.preprocess_s)
    if stats.inference_s is not None:
        _observe(pipe, "inference_seconds", stats.queue, stats.inference_s)
    if stats.model_version:
        pipe.hset(METRICS_MODELS_KEY, stats.model_version, f"{time.time():.3f}")


# -- the read side (the API, at scrape time) ---------------------------------------------


@dataclass
class HistogramSample:
    label: str
    buckets: list[tuple[float, float]]  # (upper bound, cumulative count), ending with inf
    sum: float


@dataclass
class Snapshot:
    histograms: dict[str, list[HistogramSample]] = field(default_factory=dict)
    items: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, status) -> n
    jobs: dict[str, int] = field(default_factory=dict)  # state -> jobs that entered it
    jobs_active: dict[str, int] = field(default_factory=dict)  # queued/running -> now
    models: dict[str, float] = field(default_factory=dict)  # version -> last used (unix)
    active_model: str | None = None  # the registry's active version (store.registry)
    queue_depths: dict[str, int] = field(default_factory=dict)  # Celery queue -> tasks waiting
    live_workers: int = 0  # workers with a heartbeat in the last HEARTBEAT_TTL_S


def _split(raw: dict[bytes, bytes]) -> dict[str, dict[str, str]]:
    """{"bulk|3": "5"} -> {"bulk": {"3": "5"}}."""
    out: dict[str, dict[str, str]] = {}
    for key, value in raw.items():
        label, _, part = key.decode().rpartition("|")
        out.setdefault(label, {})[part] = value.decode()
    return out


def _histogram(name: str, raw: dict[bytes, bytes]) -> list[HistogramSample]:
    bounds, _ = HISTOGRAMS[name]
    samples = []
    for label, fields in sorted(_split(raw).items()):
        running, buckets = 0.0, []
        for i, bound in enumerate((*bounds, float("inf"))):
            running += int(fields.get(str(i), 0))
            buckets.append((bound, running))
        samples.append(HistogramSample(label, buckets, float(fields.get("sum", 0))))
    return samples


def read_snapshot(client: redis.Redis, queues: Sequence[str]) -> Snapshot:
    """Everything above, and how many tasks wait in each of `queues`, in one round trip."""
    names = list(HISTOGRAMS)
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(metrics_hist_key(name))
        for key in (METRICS_ITEMS_KEY, METRICS_JOBS_KEY, METRICS_JOBS_ACTIVE_KEY,
                    METRICS_MODELS_KEY):
            pipe.hgetall(key)
        pipe.get(ACTIVE_MODEL_KEY)
        pipe.zcount(WORKERS_KEY, time.time() - HEARTBEAT_TTL_S, "+inf")
        for queue in queues:
            for key in queue_keys(queue):  # one list per priority step (store.keys)
                pipe.llen(key)
        replies = pipe.execute()
    *hists, items, jobs, active, models, active_model, workers = replies[:len(names) + 6]
    lengths = replies[len(names) + 6:]
    steps = len(QUEUE_PRIORITY_STEPS)
    snapshot = Snapshot(queue_depths={queue: sum(lengths[i * steps:(i + 1) * steps])
                                      for i, queue in enumerate(queues)},
                        live_workers=int(workers))
    for name, raw in zip(names, hists, strict=True):
        snapshot.histograms[name] = _histogram(name, raw)
    for key, value in items.items():
        queue, _, status = key.decode().rpartition("|")
        snapshot.items[(queue, status)] = int(value)
    snapshot.jobs = {k.decode(): int(v) for k, v in jobs.items()}
    # A job that expired while still active never leaves the gauge: clamp what cannot be.
    snapshot.jobs_active = {k.decode(): max(0, int(v)) for k, v in active.items()}
    snapshot.models = {k.decode(): float(v) for k, v in models.items()}
    snapshot.active_model = active_model.decode() if active_model else None
    return snapshot
