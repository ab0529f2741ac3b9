"""The FastAPI app: routers, error handlers, limits. `uvicorn api.main:app` serves it.

Torch-free by design: the API enqueues by task name and reads the job store, nothing more.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from api.auth import KeyRing
from api.batcher import SubmissionBatcher
from api.completions import CompletionListener
from api.deps import Services
from api.errors import install_error_handlers
from api.jobviews import MAX_WAIT_S
from api.jobwriter import write_single_jobs
from api.limits import RequestGuardMiddleware
from api.metrics import RequestMetricsMiddleware, create_metrics
from api.openapi import TAGS, install_openapi, operation_id
from api.quotas import Admission, Quotas, RequestLimiter
from api.reaper import sweep_forever
from api.routes import (
    classify,
    datasets,
    health,
    jobs,
    models,
    results,
    training,
    web,
    webhooks,
)
from api.streams import StreamSlots
from core.logs import configure_json_logging
from core.settings import Settings, get_settings
from store.connection import redis_url, sync_redis
from store.jobs import JobStore
from store.recovery import Reaper
from worker.app import create_celery
from worker.names import chunks_in_task

log = logging.getLogger("api")

# An open server (no keys) answers only these Host names: a web page on another site cannot
# reach it through DNS rebinding (its Host header names that site).
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]", "::1"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    services: Services = app.state.services
    if services.settings.log_format == "json":
        configure_json_logging()  # here, not at import: only a serving process logs JSON
    if services.keys.open:
        log.warning("TAGGER_API_KEYS is empty: every request is the open local tenant"
                    " 'local' (operator). Do not expose this server.")
    # The async client lives on the server's event loop, so it is made here, not at import.
    # Waits block on Redis for up to 30 s (BLMOVE): the read timeout must be longer than
    # that (redis-py's default is 5 s).
    url = redis_url(services.settings)
    services.aredis = aioredis.Redis.from_url(url, socket_timeout=MAX_WAIT_S + 30)
    services.limiter = RequestLimiter(url, services.aredis.connection_pool)
    services.admission = Admission(services.aredis, services.settings)
    # Event streams block on Redis for up to a tick each (api.sse): a bounded pool, one
    # connection per stream this process may serve (api.streams).
    services.stream_redis = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        url, max_connections=services.settings.sse_max_streams, timeout=10))
    services.completions = CompletionListener(
        aioredis.Redis.from_url(redis_url(services.settings)), services.aredis)
    await services.completions.start()
    services.batcher = SubmissionBatcher(
        lambda entries: write_single_jobs(services.store, services.celery, entries),
        until_ended=services.completions.all_ended,
        max_in_flight=services.settings.interactive_in_flight)
    services.batcher.start()
    settings = services.settings
    reaper = asyncio.get_running_loop().create_task(sweep_forever(
        Reaper(services.store, settings.reaper_interval_s, settings.upload_stall_s,
               settings.chunk_lease_s, chunks_in_task),
        services.celery), name="reaper")
    # Start-up's objects (FastAPI, pydantic, routes) move out of the collector's reach: a full
    # collection then scans what requests made, not everything, and stops the event loop for a
    # few milliseconds instead of ~60 (every ~1.5 s at 32 concurrent clients, measured).
    gc.freeze()
    try:
        yield
    finally:
        reaper.cancel()
        await asyncio.gather(reaper, return_exceptions=True)
        await services.batcher.stop()
        await services.completions.stop()
        await services.stream_redis.aclose()
        await services.aredis.aclose()
        services.store.r.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="fashion-tagger", version="1", lifespan=lifespan,
        description="Tag clothing photos with a Fashion-MNIST CNN, one image or whole"
                    " catalogues at a time. Authenticate with `Authorization: Bearer <key>`.",
        # Starlette counts multipart parts before our own item-count check (-> 413).
        form_limits={"max_files": settings.max_items_per_job + 1},
        openapi_tags=TAGS, generate_unique_id_function=operation_id,
    )
    install_openapi(app)
    keys = KeyRing(settings.api_keys)
    app.state.services = Services(
        settings=settings,
        store=JobStore(sync_redis(settings), settings.result_ttl_s,
                       settings.single_result_ttl_s),
        celery=create_celery(settings), keys=keys, metrics=create_metrics(),
        quotas=Quotas(settings), streams=StreamSlots(settings.sse_max_streams))
    install_error_handlers(app)
    # Outermost last: metrics see every answer, the Host check comes before the guard, and
    # the guard (auth, size, quotas, admission) before any route reads a body.
    app.add_middleware(RequestGuardMiddleware)
    if keys.open and not settings.allow_public_bind:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.services.metrics)
    for module in (health, classify, jobs, results, training, models, datasets, webhooks,
                   web):
        app.include_router(module.router)
    return app


app = create_app()
