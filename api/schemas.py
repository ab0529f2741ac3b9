"""Request and response models: the HTTP contract of docs/DESIGN.md, as pydantic models.

The examples are what the served schema shows (and what a generated client's docs show);
tests/api/test_openapi.py checks that each one is valid for its model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.urlcheck import url_error

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]

JOB_ID = "6f1c2a9e0b4d4e7f9a3c5b8d2e1f0a7c"
RESULT_EXAMPLE: dict[str, Any] = {
    "index": 0, "item_id": None, "filename": "shoes/sneaker-01.jpg", "status": "ok",
    "label": "Sneaker", "label_index": 7, "confidence": 0.97,
    "top_k": [{"label": "Sneaker", "score": 0.97}, {"label": "Sandal", "score": 0.02},
              {"label": "Ankle boot", "score": 0.01}],
    "needs_review": False, "model_version": "v2", "route": "photo", "error": None}
JOB_EXAMPLE: dict[str, Any] = {
    "id": JOB_ID, "kind": "bulk", "source": "archive", "status": "running",
    "progress": {"total": 1200, "done": 640, "failed": 2, "skipped": 0},
    "created_at": "2026-11-25T09:14:03.512+00:00",
    "started_at": "2026-11-25T09:14:04.101+00:00", "finished_at": None,
    "model_version": "v2", "model": None, "top_k": 3, "review_threshold": 0.6,
    "deadline_at": None, "end_reason": None, "results_url": f"/v1/jobs/{JOB_ID}/results"}


def examples(*values: dict[str, Any]) -> ConfigDict:
    """A model's examples in its JSON schema."""
    return ConfigDict(json_schema_extra={"examples": list(values)})


class JobCreate(BaseModel):
    """A bulk job: exactly one of `files` (many images), `archive` (.zip, .tar or .tar.gz) or
    `manifest` (CSV or JSONL of item_id,url), and these options (this model: the form fields
    besides the parts, documented with them as one form, api.openapi)."""

    top_k: int = Field(3, ge=1, le=10, description="labels per item, best first",
                       examples=[3])
    review_threshold: float | None = Field(
        None, ge=0, le=1, description="items with confidence below it get needs_review=true",
        examples=[0.6])
    callback_url: str | None = Field(None, description="POSTed the job summary when it ends",
                                     examples=["https://shop.example/hooks/tags"])
    model: str | None = Field(None, max_length=64, description="model version to pin (stored)",
                              examples=["v2"])
    deadline_s: int | None = Field(
        None, ge=1, description="seconds from now: the job ends by then, and items not done"
        " are skipped with reason `deadline`", examples=[3600])

    @field_validator("callback_url", "model", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("callback_url")
    @classmethod
    def _callback_url_valid(cls, value: str | None) -> str | None:
        if value is not None and (problem := url_error(value)):
            raise ValueError(problem)
        return value


class ScoredLabelPublic(BaseModel):
    model_config = examples({"label": "Sneaker", "score": 0.97})

    label: str
    score: float


class ResultItem(BaseModel):
    model_config = examples(RESULT_EXAMPLE)

    index: int
    item_id: str | None
    filename: str | None
    status: Literal["ok", "error", "skipped"]
    label: str | None
    label_index: int | None
    confidence: float | None
    top_k: list[ScoredLabelPublic]
    needs_review: bool
    model_version: str | None
    route: Literal["single", "fashion-mnist", "photo"] | None = None
    error: str | None


class Progress(BaseModel):
    model_config = examples(JOB_EXAMPLE["progress"])

    total: int
    done: int = Field(description="items tagged")
    failed: int = Field(description="items with a per-item error")
    skipped: int = Field(description="items not processed because the job was cancelled")


class JobPublic(BaseModel):
    model_config = examples(JOB_EXAMPLE)

    id: str
    kind: Literal["classify", "bulk"]
    source: Literal["file", "files", "archive", "manifest"]
    status: JobStatus
    progress: Progress
    created_at: str
    started_at: str | None
    finished_at: str | None
    model_version: str | None = Field(description="the model that tagged the items")
    model: str | None = Field(description="the model version requested at submission")
    top_k: int
    review_threshold: float | None
    deadline_at: str | None = Field(None, description="when the job ends at the latest")
    end_reason: Literal["cancelled", "deadline", "upload interrupted"] | None = Field(
        None, description="why a job ended before all its items were done; its remaining"
        " items are `skipped` with this reason")
    results_url: str


class ClassifyPublic(JobPublic):
    model_config = examples(JOB_EXAMPLE | {
        "kind": "classify", "source": "file", "status": "succeeded",
        "progress": {"total": 1, "done": 1, "failed": 0, "skipped": 0},
        "finished_at": "2026-11-25T09:14:04.163+00:00", "review_threshold": None,
        "result": RESULT_EXAMPLE | {"filename": "sneaker.jpg"}})

    result: ResultItem | None = Field(
        None, description="the item's result (200); null while the job is not done (202)")


class JobsPage(BaseModel):
    model_config = examples({"items": [JOB_EXAMPLE], "next_cursor": "1795677243.512"})

    items: list[JobPublic]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page")


class ResultsPage(BaseModel):
    model_config = examples({"job_id": JOB_ID, "status": "running", "items": [RESULT_EXAMPLE],
                             "next_cursor": 100})

    job_id: str
    status: JobStatus
    items: list[ResultItem] = Field(
        description="finished items in index order; unfinished ones appear once done")
    next_cursor: int | None = Field(description="pass as ?cursor= for the next page")


class ErrorDetail(BaseModel):
    model_config = examples({"code": "not_found", "message": "job not found"})

    code: str
    message: str


class ErrorBody(BaseModel):
    model_config = examples({"error": {"code": "not_found", "message": "job not found"}})

    error: ErrorDetail


class Health(BaseModel):
    model_config = examples({"status": "ok", "redis": True, "workers": 2})

    status: Literal["ok", "unavailable"]
    redis: bool | None = None
    workers: int | None = None
