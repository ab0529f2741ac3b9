"""A job's results (paged JSON, or all of them as CSV / JSONL) and its progress as SSE."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Literal

import redis.asyncio as aioredis
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import ServicesDep, StoreDep, StreamRedisDep, TenantDep
from api.jobviews import job_or_404, public, result_item, visible
from api.openapi import error_responses, event_stream_response
from api.schemas import JobPublic, ResultsPage
from api.sse import event_stream, progress_events
from store.events import read_job, wait_job_ended
from store.jobs import TERMINAL, JobStore
from store.results import RESULT_FIELDS

router = APIRouter(prefix="/v1/jobs", tags=["results"])

ERRORS = error_responses(401, 404, 422)
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP: CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@router.get("/{job_id}/results", response_model=ResultsPage, responses=ERRORS)
def get_results(
    job_id: str,
    store: StoreDep,
    tenant: TenantDep,
    cursor: Annotated[int, Query(ge=0, description="first item index of the page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    fmt: Annotated[Literal["json", "csv", "jsonl"], Query(alias="format")] = "json",
) -> ResultsPage | StreamingResponse:
    """Paged JSON (`?cursor=&limit=`, cursor = item index; items still pending are left out
    and appear once done), or `?format=csv|jsonl` to stream every finished item."""
    job = job_or_404(store, job_id, tenant)
    total = int(job["total"])
    if fmt != "json":
        lines = _jsonl(store, job) if fmt == "jsonl" else _csv(store, job)
        media = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
        disposition = f'attachment; filename="{job_id}.{fmt}"'
        return StreamingResponse(lines, media_type=media,
                                 headers={"Content-Disposition": disposition})
    stop = min(total, cursor + limit)
    items = [item for i, meta, raw in store.page(job_id, cursor, stop)
             if (item := result_item(i, meta, raw, job)) is not None]
    return ResultsPage(job_id=job_id, status=job["status"], items=items,
                       next_cursor=stop if stop < total else None)


STREAM_ROWS = 500  # rows per streamed piece of a CSV or JSONL export


def _items(store: JobStore, job: dict[str, str]) -> Iterator[dict]:
    for i, meta, raw in store.iter_results(job["id"], int(job["total"])):
        if (item := result_item(i, meta, raw, job)) is not None:
            yield item


def _jsonl(store: JobStore, job: dict[str, str]) -> Iterator[str]:
    lines: list[str] = []
    for item in _items(store, job):
        lines.append(json.dumps(item) + "\n")
        if len(lines) == STREAM_ROWS:  # a sync iterator costs a thread hop per piece
            yield "".join(lines)
            lines = []
    yield "".join(lines)


def neutralised(value: object) -> object:
    """A text cell a spreadsheet would run as a formula, made inert with a leading quote
    (item ids, file names and errors come from clients)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _csv(store: JobStore, job: dict[str, str]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_FIELDS)
    writer.writeheader()
    for n, item in enumerate(_items(store, job), 1):
        row = {k: neutralised(v) for k, v in item.items()}
        writer.writerow(row | {"top_k": json.dumps(item["top_k"])})  # top_k: a JSON cell
        if n % STREAM_ROWS == 0:  # stream in pieces, not row by row
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# StreamingResponse: the schema promises no JSON 200 (the route returns its stream itself).
@router.get("/{job_id}/events", response_class=StreamingResponse,
            responses=event_stream_response(JobPublic, "the job") | ERRORS)
async def job_events(job_id: str, aredis: StreamRedisDep, tenant: TenantDep,
                     services: ServicesDep) -> StreamingResponse:
    """Server-Sent Events: `progress` (the job) whenever it changes, then one `end` event
    with the final job, and the stream closes. 429 past the tenant's open streams, 503 past
    this server's."""
    visible(await read_job(aredis, job_id), tenant)
    quota = services.quota(tenant)
    return event_stream(services.streams.guarded(tenant, quota and quota.streams,
                                                 _events(aredis, job_id)))


def _events(aredis: aioredis.Redis, job_id: str) -> AsyncIterator[str]:
    async def read() -> tuple[str, bool] | None:
        job = await read_job(aredis, job_id)
        return (public(job).model_dump_json(), job["status"] in TERMINAL) if job else None

    return progress_events(read, lambda timeout_s: wait_job_ended(aredis, job_id, timeout_s))
