"""Prometheus metrics (`GET /metrics`) and the per-request access log line.

Two sources, one registry per app (tests build many apps):
- the API's own numbers: request latency by method, route template and status; items
  submitted. With several uvicorn processes (`--workers N`) set PROMETHEUS_MULTIPROC_DIR to
  an empty directory: prometheus_client then keeps these in files there, one per process, and
  each scrape sums them all, so counters never jump back whichever process answers. Without
  it they live in this process only: run one process per container.
- Redis, read at scrape time by `RedisCollector` in one round trip: queue depths, live
  workers, jobs by state, and what the workers measured (items processed and failed, batch
  sizes, preprocessing and inference latency, models in use; see store.metrics for why).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.logs import job_context
from store import metrics as store_metrics
from worker import names

log = logging.getLogger("api.access")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# The job a request is about, for its log lines (`/v1/jobs/{id}...`, `/v1/training-jobs/{id}`).
JOB_PATH = re.compile(r"^/v1/(?:training-)?jobs/([0-9A-Za-z_-]{1,64})(?:/|$)")


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Histogram
    items: Counter
    multiprocess_dir: str | None = None  # set: every process's numbers are summed per scrape


def multiprocess_dir() -> str | None:
    """prometheus_client's own switch: the library reads this variable when it is imported
    and keeps every metric value in files there; we follow the same variable, not a setting of
    ours, so the two can never disagree."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def create_metrics() -> Metrics:
    shared = multiprocess_dir()
    if shared and not os.path.isdir(shared):
        raise RuntimeError(f"PROMETHEUS_MULTIPROC_DIR={shared} is not a directory: create it"
                           " (empty) before starting the API")
    registry = CollectorRegistry()
    return Metrics(
        multiprocess_dir=shared,
        registry=registry,
        requests=Histogram("tagger_http_request_seconds", "HTTP request latency",
                           ["method", "route", "status"], buckets=LATENCY_BUCKETS,
                           registry=registry),
        items=Counter("tagger_items_submitted", "items submitted", ["kind"], registry=registry),
    )


class RedisCollector(Collector):
    """Reads the shared numbers at scrape time: one pipelined round trip, whatever the load."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tagger_redis_up", "1 if Redis answered this scrape")
        try:
            snapshot = store_metrics.read_snapshot(self.client, names.ALL_QUEUES)
        except redis.RedisError as exc:  # the HTTP metrics above are still worth serving
            logging.getLogger(__name__).warning("metrics: Redis unreachable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        queue = GaugeMetricFamily("tagger_queue_depth", "tasks waiting", labels=["queue"])
        for name, depth in snapshot.queue_depths.items():
            queue.add_metric([name], depth)
        yield queue
        yield GaugeMetricFamily("tagger_live_workers", "workers with a recent heartbeat",
                                value=snapshot.live_workers)
        yield from _job_metrics(snapshot)
        yield from _worker_metrics(snapshot)


def _job_metrics(snapshot: store_metrics.Snapshot) -> Iterator[Metric]:
    entered = CounterMetricFamily("tagger_jobs_entered", "jobs that entered each state"
                                  " (queued = submitted)", labels=["state"])
    for state in store_metrics.JOB_STATES:
        entered.add_metric([state], snapshot.jobs.get(state, 0))
    yield entered
    active = GaugeMetricFamily("tagger_jobs_active", "jobs queued or running now",
                               labels=["state"])
    for state in store_metrics.ACTIVE_STATES:
        active.add_metric([state], snapshot.jobs_active.get(state, 0))
    yield active


def _worker_metrics(snapshot: store_metrics.Snapshot) -> Iterator[Metric]:
    items = CounterMetricFamily("tagger_items_processed", "items the workers finished, by"
                                " outcome (ok, error = failed, skipped = cancelled)",
                                labels=["queue", "status"])
    for (queue, status), count in sorted(snapshot.items.items()):
        items.add_metric([queue, status], count)
    yield items
    for name, (_, help_text) in store_metrics.HISTOGRAMS.items():
        family = HistogramMetricFamily(f"tagger_{name}", help_text, labels=["queue"])
        for sample in snapshot.histograms.get(name, []):
            buckets = [(floatToGoString(le), count) for le, count in sample.buckets]
            family.add_metric([sample.label], buckets, sample.sum)
        yield family
    last_used = GaugeMetricFamily("tagger_model_last_used_timestamp_seconds",
                                  "when a worker last tagged items with each model version",
                                  labels=["version"])
    for version, stamp in sorted(snapshot.models.items()):
        last_used.add_metric([version], stamp)
    yield last_used
    active = GaugeMetricFamily("tagger_active_model_info", "the model version new jobs are"
                               " served with (value 1)", labels=["version"])
    # The registry's choice; before anything is registered, the version used most recently.
    version = snapshot.active_model or (
        max(snapshot.models, key=snapshot.models.__getitem__) if snapshot.models else None)
    if version:
        active.add_metric([version], 1)
    yield active


class _Scrape:
    """The API's own metrics and the Redis collector, read as one registry."""

    def __init__(self, metrics: Metrics, client: redis.Redis) -> None:
        own: Collector = metrics.registry
        if metrics.multiprocess_dir:
            # A fresh collector per scrape: it reads every process's files as they are now
            # (the prometheus_client multiprocess recipe). This process's own registry would
            # hold only its part, so it is left out.
            own = CollectorRegistry()
            multiprocess.MultiProcessCollector(own, path=metrics.multiprocess_dir)
        self.sources: tuple[Collector, ...] = (own, RedisCollector(client))

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def render_metrics(metrics: Metrics, client: redis.Redis) -> tuple[bytes, str]:
    return generate_latest(_Scrape(metrics, client)), CONTENT_TYPE_LATEST  # type: ignore[arg-type]


class RequestMetricsMiddleware:
    """Times every request by route template (not ids), and writes one access log line with
    the job id it is about; log lines written while handling the request carry it too."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.metrics.multiprocess_dir:
            await self.app(scope, receive, self._on_shutdown(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        match = JOB_PATH.match(scope["path"])
        with job_context(match.group(1) if match else None):
            try:
                await self.app(scope, receive, recording_send)
            finally:
                elapsed = time.perf_counter() - start
                route = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.requests.labels(scope["method"], route, str(status)).observe(elapsed)
                # The path only, never the query string: nothing a client put there is logged.
                log.info("%s %s %s", scope["method"], scope["path"], status,
                         extra={"method": scope["method"], "route": route, "status": status,
                                "duration_ms": round(elapsed * 1000, 2)})

    def _on_shutdown(self, send: Send) -> Send:
        """`send` for the lifespan scope: when this process has shut down, tell
        prometheus_client it is gone. Its counter and histogram files stay (their totals must
        not drop from the sums); only live gauges of a dead pid would be wrong, and this
        removes them. uvicorn's worker processes exit without running atexit handlers, so
        the lifespan is the one place that sees the end of each of them."""
        directory = self.metrics.multiprocess_dir

        async def lifespan_send(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.shutdown.complete":
                multiprocess.mark_process_dead(os.getpid(), directory)

        return lifespan_send
