"""Queued (re)training: submit, inspect, stream progress, cancel, fetch artifacts.

A training job belongs to the tenant that queued it: another tenant's answers 404 (an
operator sees every tenant's). Activating the model it makes is an operator's call
(api.trainingviews.check_request).

`def` routes run in FastAPI's threadpool (synchronous Redis and Celery clients); the event
stream is `async` on the async Redis client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api.deps import (
    DatasetStoreDep,
    RegistryDep,
    ServicesDep,
    StreamRedisDep,
    TenantDep,
    TrainingStoreDep,
)
from api.errors import ApiError, not_found
from api.openapi import error_responses, event_stream_response
from api.schemas_training import TrainingJobCreate, TrainingJobPublic, TrainingJobsPage
from api.sse import event_stream, progress_events
from api.trainingviews import (
    ARTIFACT_MEDIA_TYPES,
    check_request,
    owner_filter,
    public_training,
    reaped,
    training_or_404,
)
from store.events import read_training, wait_training_ended
from store.training import TERMINAL, TrainingStore, lease_expired
from worker import names

router = APIRouter(prefix="/v1/training-jobs", tags=["training"])

ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422)


@router.post("", response_model=TrainingJobPublic, status_code=202, responses=ERRORS)
def create_training_job(body: TrainingJobCreate, tenant: TenantDep, services: ServicesDep,
                        trainings: TrainingStoreDep, registry: RegistryDep,
                        datasets: DatasetStoreDep, response: Response) -> TrainingJobPublic:
    """Queue a training run on the `training` queue (one runs at a time). It trains with
    `core.runs.run_training`, registers a new model version and activates it per `activate`
    (operators only). 429 while the tenant has its quota of training jobs queued or running."""
    if body.init_from and body.arch is None and (base := registry.get(body.init_from)):
        body = body.model_copy(update={"arch": base.arch})  # a fine-tune keeps its arch
    body = body.resolved(tenant.operator)
    check_request(body, registry, datasets, tenant)
    quota = services.quota(tenant)
    if quota is not None and not tenant.operator:
        active = trainings.active_count(tenant.name)
        if active >= quota.training_jobs:
            raise ApiError(429, f"this tenant has {active} training job(s) queued or running"
                                f" (its quota is {quota.training_jobs})", "quota_exceeded",
                           headers={"Retry-After": "60"})
    job = trainings.create(tenant.name, body.model_dump())
    try:
        services.celery.send_task(names.TRAIN_MODEL, args=[job["id"]])
    except Exception:
        trainings.cancel(job["id"])  # never leave a queued job that no task will run
        raise
    response.headers["Location"] = f"/v1/training-jobs/{job['id']}"
    return public_training(job)


@router.get("", response_model=TrainingJobsPage, responses=ERRORS)
def list_training_jobs(tenant: TenantDep, trainings: TrainingStoreDep,
                       limit: Annotated[int, Query(ge=1, le=100)] = 20) -> TrainingJobsPage:
    """The caller's training jobs (an operator: everyone's), newest first."""
    return TrainingJobsPage(items=[public_training(reaped(trainings, job)) for job in
                                   trainings.list_jobs(limit, owner_filter(tenant))])


@router.get("/{job_id}", response_model=TrainingJobPublic, responses=ERRORS)
def get_training_job(job_id: str, tenant: TenantDep, trainings: TrainingStoreDep
                     ) -> TrainingJobPublic:
    """Status, epoch/step progress, loss and validation accuracy per epoch, ETA, and the
    registered model version once it succeeded."""
    return public_training(training_or_404(trainings, job_id, tenant))


@router.delete("/{job_id}", response_model=TrainingJobPublic, responses=ERRORS | {
    202: {"model": TrainingJobPublic, "description": "running: stops at its next step"}})
def cancel_training_job(job_id: str, tenant: TenantDep, trainings: TrainingStoreDep,
                        response: Response) -> TrainingJobPublic:
    """Cancel. A queued job is cancelled at once (200); a running one stops between two
    training steps (202, `cancel_requested`) and registers no model. 409 once it ended."""
    training_or_404(trainings, job_id, tenant)
    outcome = trainings.cancel(job_id)
    if outcome == -1:
        raise not_found("training job")
    job = training_or_404(trainings, job_id, tenant)
    if outcome == 0:
        raise ApiError(409, f"training job already {job['status']}; nothing to cancel",
                       "job_finished")
    response.status_code = 202 if job["status"] == "running" else 200
    return public_training(job)


@router.get("/{job_id}/artifacts/{name}", responses=ERRORS | {
    200: {"content": {"image/png": {}, "application/json": {}}}})
def get_artifact(job_id: str, name: str, tenant: TenantDep, trainings: TrainingStoreDep
                 ) -> Response:
    """A file the run produced: `curves.png` (loss/accuracy per epoch), `confusion.png`
    (validation confusion matrix), `metrics.json`."""
    job = training_or_404(trainings, job_id, tenant)
    available = public_training(job).artifacts
    data = trainings.artifact(job_id, name) if name in available else None
    if data is None:
        have = ", ".join(available) or f"none while it is {job['status']}"
        raise ApiError(404, f"no artifact {name!r}; this job has: {have}")
    media = ARTIFACT_MEDIA_TYPES.get(PurePosixPath(name).suffix, "application/octet-stream")
    return Response(data, media_type=media)


# StreamingResponse: the schema promises no JSON 200 (the route returns its stream itself).
@router.get("/{job_id}/events", response_class=StreamingResponse,
            responses=event_stream_response(TrainingJobPublic, "the training job") | ERRORS)
async def training_events(job_id: str, tenant: TenantDep, aredis: StreamRedisDep,
                          trainings: TrainingStoreDep, services: ServicesDep
                          ) -> StreamingResponse:
    """Server-Sent Events: `progress` (the training job) whenever it changes (at most every
    0.5 s), then one `end` event with the final job, and the stream closes."""
    job = await read_training(aredis, job_id)
    if job is None or (not tenant.operator and job.get("tenant") != tenant.name):
        raise not_found("training job")
    quota = services.quota(tenant)
    return event_stream(services.streams.guarded(tenant, quota and quota.streams,
                                                 _events(aredis, trainings, job_id)))


def _events(aredis: aioredis.Redis, trainings: TrainingStore, job_id: str
            ) -> AsyncIterator[str]:
    async def read() -> tuple[str, bool] | None:
        job = await read_training(aredis, job_id)
        if job and lease_expired(job):  # its worker died: end it (the reaper), then report
            await run_in_threadpool(trainings.reap, job_id)
            job = await read_training(aredis, job_id) or job
        return (public_training(job).model_dump_json(), job["status"] in TERMINAL) if job else None

    return progress_events(
        read, lambda timeout_s: wait_training_ended(aredis, job_id, timeout_s))
