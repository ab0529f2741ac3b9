"""Queued (re)training: submit, inspect, stream progress, cancel, fetch artifacts (admin only).

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
    AdminDep,
    AsyncRedisDep,
    DatasetStoreDep,
    RegistryDep,
    ServicesDep,
    TrainingStoreDep,
)
from api.errors import ApiError, not_found
from api.schemas import ErrorBody
from api.schemas_training import TrainingJobCreate, TrainingJobPublic, TrainingJobsPage
from api.sse import event_stream, progress_events
from api.trainingviews import (
    ARTIFACT_MEDIA_TYPES,
    check_request,
    public_training,
    reaped,
    training_or_404,
)
from store.events import read_training, wait_training_ended
from store.training import TERMINAL, TrainingStore, lease_expired
from worker import names

router = APIRouter(prefix="/v1/training-jobs", tags=["training"])

ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422)}


@router.post("", response_model=TrainingJobPublic, status_code=202, responses=ERRORS)
def create_training_job(body: TrainingJobCreate, admin: AdminDep, services: ServicesDep,
                        trainings: TrainingStoreDep, registry: RegistryDep,
                        datasets: DatasetStoreDep, response: Response) -> TrainingJobPublic:
    """Queue a training run on the `training` queue (one runs at a time). It trains with
    `core.runs.run_training`, registers a new model version and activates it per `activate`."""
    body = body.resolved()
    check_request(body, registry, datasets)
    job = trainings.create(admin.name, body.model_dump())
    try:
        services.celery.send_task(names.TRAIN_MODEL, args=[job["id"]])
    except Exception:
        trainings.cancel(job["id"])  # never leave a queued job that no task will run
        raise
    response.headers["Location"] = f"/v1/training-jobs/{job['id']}"
    return public_training(job)


@router.get("", response_model=TrainingJobsPage, responses=ERRORS)
def list_training_jobs(_: AdminDep, trainings: TrainingStoreDep,
                       limit: Annotated[int, Query(ge=1, le=100)] = 20) -> TrainingJobsPage:
    """Training jobs, newest first."""
    return TrainingJobsPage(items=[public_training(reaped(trainings, job))
                                   for job in trainings.list_jobs(limit)])


@router.get("/{job_id}", response_model=TrainingJobPublic, responses=ERRORS)
def get_training_job(job_id: str, _: AdminDep, trainings: TrainingStoreDep
                     ) -> TrainingJobPublic:
    """Status, epoch/step progress, loss and validation accuracy per epoch, ETA, and the
    registered model version once it succeeded."""
    return public_training(training_or_404(trainings, job_id))


@router.delete("/{job_id}", response_model=TrainingJobPublic, responses=ERRORS | {
    202: {"model": TrainingJobPublic, "description": "running: stops at its next step"}})
def cancel_training_job(job_id: str, _: AdminDep, trainings: TrainingStoreDep,
                        response: Response) -> TrainingJobPublic:
    """Cancel. A queued job is cancelled at once (200); a running one stops between two
    training steps (202, `cancel_requested`) and registers no model. 409 once it ended."""
    outcome = trainings.cancel(job_id)
    if outcome == -1:
        raise not_found("training job")
    job = training_or_404(trainings, job_id)
    if outcome == 0:
        raise ApiError(409, f"training job already {job['status']}; nothing to cancel",
                       "job_finished")
    response.status_code = 202 if job["status"] == "running" else 200
    return public_training(job)


@router.get("/{job_id}/artifacts/{name}", responses=ERRORS | {
    200: {"content": {"image/png": {}, "application/json": {}}}})
def get_artifact(job_id: str, name: str, _: AdminDep, trainings: TrainingStoreDep
                 ) -> Response:
    """A file the run produced: `curves.png` (loss/accuracy per epoch), `confusion.png`
    (validation confusion matrix), `metrics.json`."""
    job = training_or_404(trainings, job_id)
    available = public_training(job).artifacts
    data = trainings.artifact(job_id, name) if name in available else None
    if data is None:
        have = ", ".join(available) or f"none while it is {job['status']}"
        raise ApiError(404, f"no artifact {name!r}; this job has: {have}")
    media = ARTIFACT_MEDIA_TYPES.get(PurePosixPath(name).suffix, "application/octet-stream")
    return Response(data, media_type=media)


@router.get("/{job_id}/events", responses={200: {"content": {"text/event-stream": {}}},
                                           **ERRORS})
async def training_events(job_id: str, _: AdminDep, aredis: AsyncRedisDep,
                          trainings: TrainingStoreDep) -> StreamingResponse:
    """Server-Sent Events: `progress` (the training job) whenever it changes (at most every
    0.5 s), then one `end` event with the final job, and the stream closes."""
    if await read_training(aredis, job_id) is None:
        raise not_found("training job")
    return event_stream(_events(aredis, trainings, job_id))


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
