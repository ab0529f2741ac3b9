"""Request and response models of the training, model registry and dataset routes."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas import JobStatus
from core.recipes import recipe
from store.datasets import FASHION_MNIST

# core.architectures.ARCHITECTURES' names (that module imports torch); a test keeps them equal.
ARCHITECTURE_NAMES = ("baseline", "default", "large")


# core.architectures.ENSEMBLE: an ensemble of K networks of one arch (the photo model).
ENSEMBLE = re.compile(r"[a-z]+-x[2-9]")

RecipeName = Literal["default-fast", "default", "baseline", "finetune"]


class TrainingJobCreate(BaseModel):
    """POST /v1/training-jobs. `recipe` names the starting point (`fashion-tagger train
    --recipe`); a field given here overrides it. The job records the resolved values."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not a default

    dataset: str = Field(FASHION_MNIST, description="'fashion-mnist' or a dataset id")
    recipe: RecipeName = Field(
        "default-fast", description="default-fast: 18 epochs, about 7 min on 2 CPU cores;"
        " default: the shipped model's 50-epoch recipe; baseline: the original project's;"
        " finetune: from `init_from`, a low decaying learning rate, weights averaged (your own"
        " photos on the shipped photo model)")
    arch: str | None = Field(None, description=f"one of: {', '.join(ARCHITECTURE_NAMES)};"
                                               " default: the recipe's, or with `init_from`"
                                               " that model's")
    epochs: int | None = Field(None, ge=1, le=200, description="default: the recipe's")
    batch_size: int | None = Field(None, ge=8, le=4096, description="default: the recipe's")
    lr: float | None = Field(None, gt=0, le=1, description="peak learning rate; default:"
                                                           " the recipe's")
    augment: bool | None = Field(None, description="default: the recipe's")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    max_train_items: int | None = Field(
        None, ge=20, description="train on a random subset of this many items (quick runs)")
    init_from: str | None = Field(None, description="a model version to fine-tune")
    activate: Literal["never", "if_better", "always"] | None = Field(
        None, description="if_better: when its validation accuracy beats the active model's"
                          " (same labels only). Operator keys only; default: if_better for"
                          " an operator, never for a tenant")

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str | None) -> str | None:
        if value is not None and ENSEMBLE.fullmatch(value):
            value_base = value.rsplit("-x", 1)[0]
            if value_base in ARCHITECTURE_NAMES:
                return value
        if value is not None and value not in ARCHITECTURE_NAMES:
            raise ValueError(f"Unknown arch {value!r}; choose one of:"
                             f" {', '.join(ARCHITECTURE_NAMES)} (or NAME-xK, K = 2..9: an"
                             " ensemble)")
        return value

    def resolved(self, operator: bool = True) -> TrainingJobCreate:
        """Every field the recipe (and the caller's role) supplies filled in, so the job shows
        what will run."""
        base = recipe(self.recipe)
        filled = {name: getattr(base, name) for name in RECIPE_FIELDS
                  if getattr(self, name) is None}
        if self.activate is None:
            filled["activate"] = "if_better" if operator else "never"
        return self.model_copy(update=filled)


RECIPE_FIELDS = ("arch", "epochs", "batch_size", "lr", "augment")


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
