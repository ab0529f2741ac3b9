"""What the fashion-tagger API answers, as the Python client returns it: pydantic models, field
for field the API's response schemas (api/schemas.py, api/schemas_training.py).

They are written again here, not imported, because the API's modules pull in the server's
stack (the training schemas import store/, hence redis) and the client must install and import
with httpx, pydantic and nothing else. tests/cli/test_client_schemas.py compares the two, field
by field, so they cannot drift apart. Fields the server adds later are ignored, not errors:
an older client keeps working against a newer server.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")


class ScoredLabel(BaseModel):
    label: str
    score: float


class ResultItem(BaseModel):
    """One item of a job: `status` ok (label, confidence, top_k), error (`error` says why) or
    skipped (the job was cancelled first)."""

    index: int
    item_id: str | None
    filename: str | None
    status: Literal["ok", "error", "skipped"]
    label: str | None
    label_index: int | None
    confidence: float | None
    top_k: list[ScoredLabel]
    needs_review: bool
    model_version: str | None
    route: Literal["single", "fashion-mnist", "photo"] | None = None
    error: str | None


class Progress(BaseModel):
    total: int
    done: int
    failed: int
    skipped: int

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped


class Job(BaseModel):
    id: str
    kind: Literal["classify", "bulk"]
    source: Literal["file", "files", "archive", "manifest"]
    status: JobStatus
    progress: Progress
    created_at: str
    started_at: str | None
    finished_at: str | None
    model_version: str | None
    model: str | None
    top_k: int
    review_threshold: float | None
    deadline_at: str | None = None  # when the job ends at the latest (deadline_s)
    # Why it ended before all its items were done (those are `skipped` with this reason).
    end_reason: Literal["cancelled", "deadline", "upload interrupted"] | None = None
    results_url: str

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


class ClassifyJob(Job):
    """POST /v1/classify: `result` is set when the image was tagged within `wait` seconds."""

    result: ResultItem | None = None


class JobsPage(BaseModel):
    items: list[Job]
    next_cursor: str | None


class ResultsPage(BaseModel):
    job_id: str
    status: JobStatus
    items: list[ResultItem]
    next_cursor: int | None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    redis: bool | None = None
    workers: int | None = None


# -- training, models, datasets --------------------------------------------------------------


class TrainingRequest(BaseModel):
    """A training job's request, with the recipe's values filled in by the server."""

    dataset: str = "fashion-mnist"
    recipe: Literal["default-fast", "default", "baseline", "finetune", "photo-finetune"] = (
        "default-fast")
    arch: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    augment: bool | None = None
    seed: int = 0
    max_train_items: int | None = None
    init_from: str | None = None
    # None asks for the server's default: if_better for an operator, never for a tenant
    activate: Literal["never", "if_better", "always"] | None = None


class TrainingProgress(BaseModel):
    epoch: int
    epochs: int
    step: int
    steps: int
    fraction: float


class Epoch(BaseModel):
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    elapsed_s: float


class TrainingJob(BaseModel):
    id: str
    status: JobStatus
    request: TrainingRequest
    progress: TrainingProgress
    loss: float | None
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    elapsed_s: float | None
    eta_s: float | None
    history: list[Epoch]
    model_version: str | None
    activation: str | None
    error: str | None
    cancel_requested: bool
    attempts: int
    artifacts: list[str]
    created_at: str
    started_at: str | None
    finished_at: str | None

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


class TrainingJobsPage(BaseModel):
    items: list[TrainingJob]


class Model(BaseModel):
    version: str
    active: bool
    registered_at: str
    source: str
    arch: str
    labels: list[str]
    metrics: dict[str, Any]
    dataset: dict[str, Any]
    train_config: dict[str, Any] | None
    history: list[dict[str, Any]]
    weights_sha256: str
    parameters: int
    parent: dict[str, Any] | None
    created_at: str | None
    size_bytes: int
    formats: list[Literal["safetensors", "onnx"]]


class ModelsPage(BaseModel):
    items: list[Model] = Field(description="oldest first")
    active: str | None


class DatasetClass(BaseModel):
    label: str
    count: int


class Dataset(BaseModel):
    id: str
    name: str | None
    created_at: str
    labels: list[str]
    classes: list[DatasetClass]
    total: int
    size_bytes: int


class DatasetsPage(BaseModel):
    items: list[Dataset]
