"""POST /v1/classify: one image on the interactive queue, optionally waiting for the result.

This is the service's hot path (single-image latency at 32 concurrent clients), so the route
reads its request itself: FastAPI's per-parameter machinery (dependencies, security schemes,
form fields, response validation) cost about a quarter of the API's CPU per request (callgrind:
3.43M -> 2.52M instructions per request). The parameters are declared once, as the pydantic
models below, which both validate them and describe them in the OpenAPI schema.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile

from api.deps import SECURITY_OPENAPI, Services, authenticate, services_of
from api.jobviews import MAX_WAIT_S, is_active, result_item
from api.openapi import error_responses
from api.schemas import ClassifyPublic
from api.submission import check_idempotency_key, fingerprint, single_image_spec, submit
from api.uploads import read_image_part
from store.events import read_single
from store.results import job_summary

router = APIRouter(prefix="/v1", tags=["classify"])
M = TypeVar("M", bound=BaseModel)

ERRORS = error_responses(400, 401, 413, 415, 422)


class ClassifyQuery(BaseModel):
    wait: float = Field(0, ge=0, le=MAX_WAIT_S,
                        description="seconds to wait for the result before answering 202")


class ClassifyOptions(BaseModel):
    """The form fields besides `file`."""

    top_k: int = Field(3, ge=1, le=10, description="how many ranked labels to return")
    review_threshold: float | None = Field(
        None, ge=0, le=1, description="results below this confidence get needs_review: true")


def _openapi() -> dict[str, Any]:
    form = ClassifyOptions.model_json_schema() | {
        "title": "ClassifyForm", "description": "the image and its options"}
    form["properties"] = {"file": {"type": "string", "format": "binary", "description":
                                   "one image: JPEG, PNG, WebP, GIF, BMP, TIFF"},
                          **form["properties"]}
    form["required"] = ["file"]
    wait = ClassifyQuery.model_json_schema()["properties"]["wait"]
    return {
        "parameters": [
            {"name": "wait", "in": "query", "required": False, "schema": wait,
             "description": wait["description"]},
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "schema": {"type": "string", "minLength": 1, "maxLength": 255},
             "description": "a repeated key returns the job of the first request"},
        ],
        "requestBody": {"required": True,
                        "content": {"multipart/form-data": {"schema": form}}},
        "security": SECURITY_OPENAPI,
    }


@router.post(
    "/classify", response_model=ClassifyPublic, status_code=202, openapi_extra=_openapi(),
    responses={200: {"model": ClassifyPublic, "description": "done within `wait`"}, **ERRORS},
)
async def classify(request: Request) -> Response:
    """Classify one image. Answers 200 with the result when it is ready within `wait` seconds,
    else 202 with the job (poll `GET /v1/jobs/{id}`)."""
    services = services_of(request)
    tenant = authenticate(request)
    wait = _validated(ClassifyQuery, "query", request.query_params).wait
    idempotency_key = check_idempotency_key(request.headers.get("idempotency-key"))
    async with request.form(max_files=1) as form:  # a malformed body: 400 (api.errors)
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise RequestValidationError([{"loc": ("body", "file"), "type": "missing",
                                           "msg": "one image file is required"}])
        options = _validated(ClassifyOptions, "body", {
            k: v for k, v in form.items() if k != "file" and v != ""})  # "" = not given
        if idempotency_key is None and services.batcher is not None:
            # Header-only decode of an in-memory upload: cheap enough on the event loop.
            data = read_image_part(file, services.settings)
            spec = single_image_spec(tenant, options.top_k, options.review_threshold)
            job = await services.batcher.submit(
                (spec, {"item_id": None, "filename": file.filename}, data))
            services.metrics.items.labels("classify").inc()
            created = True
        else:  # repeatable: the Idempotency-Key is claimed before anything is written
            def create() -> tuple[dict[str, str], bool]:  # blocking: Redis, Celery
                request = fingerprint(options.model_dump(), [(f"file:{file.filename}",
                                                              file.file)])
                data = read_image_part(file, services.settings)
                meta = {"item_id": None, "filename": file.filename}
                return submit(services, tenant, [(meta, data)], kind="classify",
                              source="file", top_k=options.top_k,
                              review_threshold=options.review_threshold,
                              idempotency=idempotency_key, request_fingerprint=request)

            job, created = await run_in_threadpool(create)
    item = None
    if wait > 0 or not created:  # else: just queued, nothing more to read
        job, item = await single_result(services, job, wait)
    body = ClassifyPublic.model_validate(job_summary(job) | {"result": item})
    return Response(body.model_dump_json(), status_code=200 if item is not None else 202,
                    media_type="application/json",
                    headers={"Location": f"/v1/jobs/{job['id']}"})


def _validated(model: type[M], where: str, values: Any) -> M:
    """`model` from request values; a 422 in FastAPI's shape (api.errors) when invalid."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        raise RequestValidationError(
            [err | {"loc": (where, *err["loc"])} for err in exc.errors()]) from None


async def single_result(services: Services, job: dict[str, str], wait: float
                        ) -> tuple[dict[str, str], dict | None]:
    """The one-image job and its result, after waiting up to `wait` seconds for it to end;
    the result is None while the job is still active."""
    aredis, completions = services.aredis, services.completions
    assert aredis is not None and completions is not None, "the app's lifespan has not run"
    if wait > 0 and is_active(job):
        end = await completions.wait(job["id"], wait)
        if end is not None and end.record is not None and end.result is not None:
            return end.record, json.loads(end.result)  # answered by the announcement
    job, raw, meta = await read_single(aredis, job["id"])
    return job, None if is_active(job) or meta is None else result_item(0, meta, raw, job)
