"""Dependencies, as `Annotated` aliases the routes declare: settings, tenant, store, Redis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis.asyncio as aioredis
from celery import Celery
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import KeyRing, Tenant, key_from_headers
from api.batcher import SubmissionBatcher
from api.completions import CompletionListener
from api.errors import ApiError
from api.metrics import Metrics
from api.quotas import Admission, Quota, Quotas, RequestLimiter
from api.streams import StreamSlots
from core.settings import Settings
from store.datasets import DatasetStore
from store.jobs import JobStore
from store.registry import ModelRegistry
from store.training import TrainingStore


@dataclass
class Services:
    """Per-app singletons, built by api.main.create_app (the async client by its lifespan)."""

    settings: Settings
    store: JobStore
    celery: Celery
    keys: KeyRing
    metrics: Metrics
    quotas: Quotas
    streams: StreamSlots
    aredis: aioredis.Redis | None = None
    batcher: SubmissionBatcher | None = None  # single-image submissions, made by the lifespan
    completions: CompletionListener | None = None  # waits for jobs to end, made by the lifespan
    # Made by the lifespan too (they need the event loop): the request guard's (api.limits)
    limiter: RequestLimiter | None = None
    admission: Admission | None = None
    # Event streams' own client, on a pool of TAGGER_SSE_MAX_STREAMS connections (api.streams)
    stream_redis: aioredis.Redis | None = None

    def quota(self, tenant: Tenant) -> Quota | None:
        """The tenant's quota; None for the open local tenant (no quotas)."""
        return None if tenant.open else self.quotas.of(tenant.name)


# The dependencies are coroutines, though none of them awaits anything: FastAPI runs a plain
# `def` dependency in its threadpool, a thread hop per dependency per request.


def services_of(request: Request) -> Services:
    return request.app.state.services


async def get_services(request: Request) -> Services:
    return services_of(request)


async def get_settings(request: Request) -> Settings:
    return services_of(request).settings


async def get_store(request: Request) -> JobStore:
    return services_of(request).store


async def get_registry(request: Request) -> ModelRegistry:
    return ModelRegistry(services_of(request).store.r)  # cheap: scripts are loaded on first use


async def get_stream_redis(request: Request) -> aioredis.Redis:
    client = services_of(request).stream_redis
    assert client is not None, "the app's lifespan has not run"
    return client


async def get_training_store(request: Request) -> TrainingStore:
    services = services_of(request)
    return TrainingStore(services.store.r, services.settings.result_ttl_s)


async def get_dataset_store(request: Request) -> DatasetStore:
    return DatasetStore(services_of(request).store.r)


async def get_async_redis(request: Request) -> aioredis.Redis:
    client = services_of(request).aredis
    assert client is not None, "the app's lifespan has not run"
    return client


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")
# What a route that authenticates by itself (`authenticate`) declares in OpenAPI: either scheme.
SECURITY_OPENAPI = [{_bearer.scheme_name: []}, {_api_key.scheme_name: []}]


def authenticate(request: Request) -> Tenant:
    """The caller's tenant, from `Authorization: Bearer <key>` or `X-API-Key: <key>`; 401 when
    the key is missing or unknown (with no keys configured, everyone is the local tenant).
    The request guard (api.limits) has usually found it already, before the body."""
    found = request.scope.get("state", {}).get("tenant")
    if found is not None:
        return found
    key = key_from_headers(request.headers.get("authorization"),
                           request.headers.get("x-api-key"))
    tenant = services_of(request).keys.tenant_for(key)
    if tenant is None:
        message = "invalid API key" if key else "missing API key (Authorization: Bearer <key>)"
        raise ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})
    return tenant


async def current_tenant(
    request: Request,
    # Declared for the OpenAPI security schemes; `authenticate` reads the same headers.
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _key: Annotated[str | None, Depends(_api_key)],
) -> Tenant:
    return authenticate(request)


async def operator_tenant(tenant: Annotated[Tenant, Depends(current_tenant)]) -> Tenant:
    """What changes the service for every tenant (activating a model version) needs a key
    marked `:operator` (api.auth)."""
    if not tenant.operator:
        raise ApiError(403, "this operation needs an operator API key (key:tenant:operator)")
    return tenant


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
AsyncRedisDep = Annotated[aioredis.Redis, Depends(get_async_redis)]
StreamRedisDep = Annotated[aioredis.Redis, Depends(get_stream_redis)]
ServicesDep = Annotated[Services, Depends(get_services)]
TenantDep = Annotated[Tenant, Depends(current_tenant)]
OperatorDep = Annotated[Tenant, Depends(operator_tenant)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
TrainingStoreDep = Annotated[TrainingStore, Depends(get_training_store)]
DatasetStoreDep = Annotated[DatasetStore, Depends(get_dataset_store)]
