"""Service metrics kept in Redis, so that the API's `/metrics` shows what the workers did.

Workers are many processes on many hosts and the API is the one place Prometheus scrapes, so
workers add their numbers to shared Redis hashes (one pipelined round trip per chunk: a few
HINCRBYs, cheap next to a forward pass) and the API reads them at scrape time. Torch-free: the
API imports this module for the read side.

    tagger:metrics:hist:{name}   hash  "{queue}|{i}" -> count in bucket i (not cumulative;
                                       i == len(bounds) is +Inf), "{queue}|sum", "{queue}|count"
    tagger:metrics:items         hash  "{queue}|{status}" -> items processed (ok/error/skipped)
    tagger:metrics:jobs          hash  state -> jobs that entered it (queued = created)
    tagger:metrics:jobs_active   hash  queued/running -> jobs in that state now
    tagger:metrics:models        hash  model version -> unix time a worker last used it

The active model version is the registry's own (worker.registry), read at scrape time.

The job counters change inside the job store's own writes and Lua scripts (worker.jobscripts),
atomically with the state change they count. These keys never expire: they are counters.
"""

from __future__ import annotations

import bisect
import logging
import time
from dataclasses import dataclass, field

import redis
from prometheus_client.utils import floatToGoString

from worker.registry import ACTIVE_KEY as ACTIVE_MODEL_KEY

log = logging.getLogger(__name__)

PREFIX = "tagger:metrics"
ITEMS_KEY = f"{PREFIX}:items"
JOBS_KEY = f"{PREFIX}:jobs"
JOBS_ACTIVE_KEY = f"{PREFIX}:jobs_active"
MODELS_KEY = f"{PREFIX}:models"
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


def hist_key(name: str) -> str:
    return f"{PREFIX}:hist:{name}"


@dataclass
class ChunkStats:
    """What one chunk measured; filled in by worker.chunks.classify_ready."""

    queue: str
    model_version: str = ""
    batch_size: int = 0  # images that went into the predictor (decoded or not)
    preprocess_s: float | None = None
    inference_s: float | None = None


def _observe(pipe: redis.client.Pipeline, name: str, label: str, value: float) -> None:
    bounds, _ = HISTOGRAMS[name]
    key = hist_key(name)
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
        pipe.hincrby(ITEMS_KEY, f"{stats.queue}|{status}", n)
    if stats.batch_size:
        _observe(pipe, "batch_size", stats.queue, stats.batch_size)
    if stats.preprocess_s is not None:
        _observe(pipe, "preprocess_seconds", stats.queue, stats.preprocess_s)
    if stats.inference_s is not None:
        _observe(pipe, "inference_seconds", stats.queue, stats.inference_s)
    if stats.model_version:
        pipe.hset(MODELS_KEY, stats.model_version, f"{time.time():.3f}")


# -- the read side (the API, at scrape time) ---------------------------------------------


@dataclass
class HistogramSample:
    label: str
    buckets: list[tuple[str, float]]  # (le, cumulative count), ending with ("+Inf", count)
    sum: float


@dataclass
class Snapshot:
    histograms: dict[str, list[HistogramSample]] = field(default_factory=dict)
    items: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, status) -> n
    jobs: dict[str, int] = field(default_factory=dict)  # state -> jobs that entered it
    jobs_active: dict[str, int] = field(default_factory=dict)  # queued/running -> now
    models: dict[str, float] = field(default_factory=dict)  # version -> last used (unix)
    active_model: str | None = None  # the registry's active version (worker.registry)


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
            buckets.append((floatToGoString(bound), running))  # "0.025", "4.0", "+Inf"
        samples.append(HistogramSample(label, buckets, float(fields.get("sum", 0))))
    return samples


def read_snapshot(client: redis.Redis) -> Snapshot:
    """Everything above in one round trip."""
    names = list(HISTOGRAMS)
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(hist_key(name))
        for key in (ITEMS_KEY, JOBS_KEY, JOBS_ACTIVE_KEY, MODELS_KEY):
            pipe.hgetall(key)
        pipe.get(ACTIVE_MODEL_KEY)
        *hists, items, jobs, active, models, active_model = pipe.execute()
    snapshot = Snapshot()
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
