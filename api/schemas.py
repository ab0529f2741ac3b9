"""Request and response models: the HTTP contract of docs/DESIGN.md, as pydantic models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from api.urlcheck import url_error

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobCreate(BaseModel):
    """Form options of POST /v1/jobs (the images come as `files`, `archive` or `manifest`)."""

    top_k: int = Field(3, ge=1, le=10, description="labels per item, best first")
    review_threshold: float | None = Field(
        None, ge=0, le=1, description="items with confidence below it get needs_review=true")
    callback_url: str | None = Field(None, description="POSTed the job summary when it ends")
    model: str | None = Field(None, max_length=64, description="model version to pin (stored)")
    deadline_s: int | None = Field(
        None, ge=1, description="seconds from now: the job ends by then, and items not done"
        " are skipped with reason `deadline`")

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
    label: str
    score: float


class ResultItem(BaseModel):
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
    total: int
    done: int = Field(description="items tagged")
    failed: int = Field(description="items with a per-item error")
    skipped: int = Field(description="items not processed because the job was cancelled")


class JobPublic(BaseModel):
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
    result: ResultItem | None = Field(
        None, description="the item's result (200); null while the job is not done (202)")


class JobsPage(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page")


class ResultsPage(BaseModel):
    job_id: str
    status: JobStatus
    items: list[ResultItem] = Field(
        description="finished items in index order; unfinished ones appear once done")
    next_cursor: int | None = Field(description="pass as ?cursor= for the next page")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    redis: bool | None = None
    workers: int | None = None
