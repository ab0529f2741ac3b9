"""Request and response models of the training, model registry and dataset routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas import JobStatus
from worker.datasets import FASHION_MNIST

# core.architectures.ARCHITECTURES' names (that module imports torch); a test keeps them equal.
ARCHITECTURE_NAMES = ("baseline", "default", "large")


class TrainingJobCreate(BaseModel):
    """POST /v1/training-jobs. Fields not set here (optimizer, schedule, label smoothing...)
    come from the `default-fast` recipe."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not a default

    dataset: str = Field(FASHION_MNIST, description="'fashion-mnist' or a dataset id")
    arch: str = Field("default", description=f"one of: {', '.join(ARCHITECTURE_NAMES)}")
    epochs: int = Field(18, ge=1, le=200)
    batch_size: int = Field(128, ge=8, le=4096)
    lr: float = Field(3e-3, gt=0, le=1, description="peak learning rate (one-cycle)")
    augment: bool = True
    seed: int = Field(0, ge=0, le=2**31 - 1)
    max_train_items: int | None = Field(
        None, ge=20, description="train on a random subset of this many items (quick runs)")
    init_from: str | None = Field(None, description="a model version to fine-tune")
    activate: Literal["never", "if_better", "always"] = Field(
        "if_better", description="if_better: when its validation accuracy beats the active"
                                 " model's (same labels only)")

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        if value not in ARCHITECTURE_NAMES:
            raise ValueError(f"Unknown arch {value!r}; choose one of:"
                             f" {', '.join(ARCHITECTURE_NAMES)}")
        return value


class TrainingProgress(BaseModel):
    epoch: int = Field(description="1-based; 0 before the first step")
    epochs: int
    step: int = Field(description="within the epoch")
    steps: int = Field(description="steps per epoch; 0 until training starts")
    fraction: float = Field(description="of the whole run, 0..1")


class EpochPublic(BaseModel):
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    elapsed_s: float


class TrainingJobPublic(BaseModel):
    id: str
    status: JobStatus
    request: TrainingJobCreate
    progress: TrainingProgress
    loss: float | None = Field(description="running training loss of the current epoch")
    accuracy: float | None = Field(description="running training accuracy of the epoch")
    val_loss: float | None = Field(description="after the last finished epoch")
    val_accuracy: float | None = Field(description="after the last finished epoch")
    elapsed_s: float | None
    eta_s: float | None = Field(description="estimated seconds of training left")
    history: list[EpochPublic]
    model_version: str | None = Field(description="the version this job registered")
    activation: str | None = Field(description="whether and why it was activated")
    error: str | None
    cancel_requested: bool
    attempts: int = Field(description="2 after a restart following a lost worker")
    artifacts: list[str] = Field(description="names for GET .../artifacts/{name}")
    created_at: str
    started_at: str | None
    finished_at: str | None


class TrainingJobsPage(BaseModel):
    items: list[TrainingJobPublic]


class ModelPublic(BaseModel):
    version: str
    active: bool
    registered_at: str
    source: str = Field(description="seed:<file> or training-job:<id>")
    arch: str
    labels: list[str]
    metrics: dict[str, Any]
    dataset: dict[str, Any]
    train_config: dict[str, Any] | None
    history: list[dict[str, Any]]
    weights_sha256: str
    parameters: int
    parent: dict[str, Any] | None = Field(
        description="the model it was fine-tuned from (init_from): digest, arch, metrics")
    created_at: str | None
    size_bytes: int
    formats: list[Literal["safetensors", "onnx"]] = Field(
        description="downloadable formats (onnx is added by the first worker that loads a"
                    " seeded version)")


class ModelsPage(BaseModel):
    items: list[ModelPublic] = Field(description="oldest first")
    active: str | None


class DatasetClass(BaseModel):
    label: str
    count: int


class DatasetPublic(BaseModel):
    id: str
    name: str | None = Field(description="as given at upload")
    created_at: str
    labels: list[str] = Field(description="sorted: label i of a model trained on it")
    classes: list[DatasetClass]
    total: int
    size_bytes: int


class DatasetsPage(BaseModel):
    items: list[DatasetPublic]
