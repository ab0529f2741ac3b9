"""Prometheus metrics: request latency per route, submissions, and queue depth / live workers
read from Redis at scrape time. One registry per app (tests build many apps)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker import names
from worker.jobstore import JobStore

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Histogram
    items: Counter
    queue_depth: Gauge
    workers: Gauge


def create_metrics() -> Metrics:
    registry = CollectorRegistry()
    return Metrics(
        registry=registry,
        requests=Histogram("tagger_http_request_seconds", "HTTP request latency",
                           ["method", "route", "status"], buckets=LATENCY_BUCKETS,
                           registry=registry),
        items=Counter("tagger_items_submitted", "items submitted", ["kind"], registry=registry),
        queue_depth=Gauge("tagger_queue_depth", "tasks waiting", ["queue"], registry=registry),
        workers=Gauge("tagger_live_workers", "workers with a recent heartbeat",
                      registry=registry),
    )


def render_metrics(metrics: Metrics, store: JobStore) -> tuple[bytes, str]:
    for queue, depth in store.queue_depths(names.ALL_QUEUES).items():
        metrics.queue_depth.labels(queue).set(depth)
    metrics.workers.set(store.live_workers())
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the template, not ids
            self.metrics.requests.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - start)
