"""Bulk jobs: submit (files, archive or URL manifest), list, inspect, cancel.

These routes are `def`: FastAPI runs them in its threadpool, where reading spooled uploads,
archives and the synchronous Redis/Celery clients may block.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile

from api.deps import ServicesDep, StoreDep, TenantDep
from api.errors import ApiError
from api.jobviews import job_or_404, public
from api.openapi import error_responses
from api.schemas import JobCreate, JobPublic, JobsPage
from api.submission import check_idempotency_key, fingerprint, submit
from api.uploads import items_from_archive, items_from_files, items_from_manifest
from worker import names

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

ERRORS = error_responses(400, 401, 404, 409, 413, 415, 422)


@router.post("", response_model=JobPublic, status_code=202, responses=ERRORS)
def create_job(
    services: ServicesDep,
    tenant: TenantDep,
    response: Response,
    options: Annotated[JobCreate, Form()],
    files: Annotated[list[UploadFile] | None, File(description="images, many parts")] = None,
    archive: Annotated[UploadFile | None, File(description=".zip, .tar or .tar.gz")] = None,
    manifest: Annotated[UploadFile | None, File(description="CSV/JSONL: item_id,url")] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JobPublic:
    """Queue a bulk job from exactly one of `files`, `archive` or `manifest`; answers 202 with
    the job before any inference. A repeated `Idempotency-Key` returns the earlier job (422
    when the request differs). 429 past the tenant's quotas, 503 while at capacity."""
    check_idempotency_key(idempotency_key)
    given = {name: part for name, part in
             (("files", files), ("archive", archive), ("manifest", manifest)) if part}
    if len(given) != 1:
        raise ApiError(422, "send exactly one of: files, archive, manifest"
                            f" (got {', '.join(given) or 'none'})")
    source, part = next(iter(given.items()))
    settings = services.settings
    parts = part if source == "files" else [part]
    request = (fingerprint(options.model_dump() | {"source": source},
                           [(f"{source}:{p.filename}", p.file) for p in parts])
               if idempotency_key else "")
    if source == "files":
        items = items_from_files(part, settings)
    elif source == "archive":
        items = items_from_archive(part, settings)
    else:
        items = items_from_manifest(part, settings)
    job, created = submit(services, tenant, items, kind="bulk", source=source,
                          idempotency=idempotency_key, request_fingerprint=request,
                          **options.model_dump())
    response.headers["Location"] = f"/v1/jobs/{job['id']}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return public(job)


@router.get("", response_model=JobsPage, responses=ERRORS)
def list_jobs(
    store: StoreDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> JobsPage:
    """The caller's jobs, newest first. Cursor pagination (`?limit=&cursor=`): stable while
    new jobs arrive."""
    before = None
    if cursor:  # absent or empty: the first page
        try:
            before = float(cursor)
        except ValueError:
            raise ApiError(422, "cursor: not a cursor returned by this API") from None
    jobs = store.list_jobs(tenant.name, limit + 1, before)
    page = jobs[:limit]
    next_cursor = page[-1]["_score"] if len(jobs) > limit else None
    return JobsPage(items=[public(j) for j in page], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobPublic, responses=ERRORS)
def get_job(job_id: str, store: StoreDep, tenant: TenantDep) -> JobPublic:
    """Status, progress {total, done, failed, skipped}, timestamps and model version."""
    return public(job_or_404(store, job_id, tenant))


@router.delete("/{job_id}", response_model=JobPublic, responses=ERRORS)
def cancel_job(job_id: str, services: ServicesDep, tenant: TenantDep) -> JobPublic:
    """Cancel: items not yet processed are skipped. Cancelling a cancelled job is a no-op;
    a job that already succeeded or failed answers 409."""
    store = services.store
    job = job_or_404(store, job_id, tenant)
    if store.cancel(job_id) == 1 and job["callback_url"]:
        services.celery.send_task(names.SEND_WEBHOOK, args=[job_id])
    job = job_or_404(store, job_id, tenant)
    if job["status"] != "cancelled":
        raise ApiError(409, f"job already {job['status']}; nothing to cancel", "job_finished")
    return public(job)
