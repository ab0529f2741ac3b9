"""POST /v1/classify: one image on the interactive queue, optionally waiting for the result."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from redis.asyncio import Redis

from api.deps import AsyncRedisDep, Services, ServicesDep, TenantDep
from api.jobviews import (
    MAX_WAIT_S,
    is_active,
    public,
    read_job_async,
    result_item,
    wait_until_done,
)
from api.schemas import ClassifyPublic, ErrorBody
from api.submission import check_idempotency_key, single_image_spec, submit
from api.uploads import read_image_part

router = APIRouter(prefix="/v1", tags=["classify"])

ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 413, 415, 422)}


@router.post(
    "/classify", response_model=ClassifyPublic, status_code=202,
    responses={200: {"model": ClassifyPublic, "description": "done within `wait`"}, **ERRORS},
)
async def classify(
    services: ServicesDep,
    tenant: TenantDep,
    aredis: AsyncRedisDep,
    response: Response,
    file: Annotated[UploadFile, File(description="one image: JPEG, PNG, WebP, GIF, BMP, TIFF")],
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S, description="seconds to wait")] = 0,
    top_k: Annotated[int, Form(ge=1, le=10)] = 3,
    review_threshold: Annotated[float | None, Form(ge=0, le=1)] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> ClassifyPublic:
    """Classify one image. Answers 200 with the result when it is ready within `wait` seconds,
    else 202 with the job (poll `GET /v1/jobs/{id}`)."""
    check_idempotency_key(idempotency_key)
    if idempotency_key is None and services.batcher is not None:
        # Header-only decode of an in-memory (or page-cached) upload: cheap on the event loop.
        data = read_image_part(file, services.settings)
        spec = single_image_spec(tenant, top_k, review_threshold)
        job = await services.batcher.submit((spec, {"item_id": None, "filename": file.filename},
                                             data))
        services.metrics.items.labels("classify").inc()
        created = True
    else:  # a repeatable submission: the Idempotency-Key is claimed before anything is written
        def create() -> tuple[dict[str, str], bool]:  # blocking: file I/O, Redis, Celery
            data = read_image_part(file, services.settings)
            meta = {"item_id": None, "filename": file.filename}
            return submit(services, tenant, [(meta, data)], kind="classify", source="file",
                          top_k=top_k, review_threshold=review_threshold,
                          idempotency=idempotency_key)

        job, created = await run_in_threadpool(create)
    item = None
    if wait > 0 or not created:  # else: just queued, nothing more to read
        job, item = await single_result(services, aredis, job, wait)
    response.status_code = 200 if item is not None else 202
    response.headers["Location"] = f"/v1/jobs/{job['id']}"
    return ClassifyPublic(**public(job).model_dump(), result=item)


async def single_result(services: Services, aredis: Redis, job: dict[str, str],
                        wait: float) -> tuple[dict[str, str], dict | None]:
    """The one-image job and its result, after waiting up to `wait` seconds for it to end;
    the result is None while the job is still active."""
    if wait > 0 and is_active(job):
        if services.completions is not None:
            end = await services.completions.wait(job["id"], wait)
            if end is not None and end.record is not None and end.result is not None:
                return end.record, json.loads(end.result)  # answered by the announcement
        else:
            await wait_until_done(aredis, job["id"], wait)
    job, raw, meta = await read_job_async(aredis, job["id"])
    return job, None if is_active(job) or meta is None else result_item(0, meta, raw, job)
