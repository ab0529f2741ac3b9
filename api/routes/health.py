"""Liveness, readiness and Prometheus metrics (unauthenticated: for probes and scrapers)."""

from __future__ import annotations

import redis
from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import ServicesDep
from api.errors import ApiError
from api.metrics import render_metrics
from api.schemas import ErrorBody, Health
from store.workers import live_workers

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process answers (no dependencies checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": ErrorBody}})
def readyz(services: ServicesDep) -> Health:
    """Ready when Redis answers and at least one worker sent a heartbeat in the last 30 s."""
    try:
        workers = live_workers(services.store.r)
    except redis.RedisError as exc:
        raise ApiError(503, f"Redis is unreachable: {exc}", "not_ready") from exc
    if not workers:
        raise ApiError(503, "no worker has sent a heartbeat recently", "not_ready")
    return Health(status="ok", redis=True, workers=workers)


@router.get("/metrics", include_in_schema=False)
def metrics(services: ServicesDep) -> Response:
    body, content_type = render_metrics(services.metrics, services.store.r)
    return Response(body, media_type=content_type)
