"""Request and response models of the training, model registry and dataset routes."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas import JobStatus, examples
from core.recipes import recipe
from store.datasets import FASHION_MNIST

# core.architectures.ARCHITECTURES' names (that module imports torch); a test keeps them equal.
ARCHITECTURE_NAMES = ("baseline", "default", "large")


# core.architectures.ENSEMBLE: an ensemble of K networks of one arch (the photo model).
ENSEMBLE = re.compile(r"[a-z]+-x[2-9]")

RecipeName = Literal["default-fast", "default", "baseline", "finetune", "photo-finetune"]

DATASET_EXAMPLE: dict[str, Any] = {
    "id": "ds-4b1e9c0a7d2f", "name": "spring catalogue",
    "created_at": "2026-11-25T08:02:11.907+00:00", "labels": ["Dress", "Sneaker"],
    "classes": [{"label": "Dress", "count": 120}, {"label": "Sneaker", "count": 95}],
    "total": 215, "size_bytes": 18874368}
EPOCH_EXAMPLE: dict[str, Any] = {
    "epoch": 3, "train_loss": 0.412, "train_accuracy": 0.861, "val_loss": 0.371,
    "val_accuracy": 0.874, "lr": 0.0021, "elapsed_s": 61.8}
TRAINING_REQUEST_EXAMPLE: dict[str, Any] = {
    "dataset": "fashion-mnist", "recipe": "default-fast", "epochs": 5,
    "max_train_items": 12000, "seed": 0, "activate": "never"}
TRAINING_JOB_EXAMPLE: dict[str, Any] = {
    "id": "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a", "status": "running",
    "request": TRAINING_REQUEST_EXAMPLE | {
        "arch": "default", "batch_size": 128, "lr": 0.003, "augment": True, "init_from": None},
    "progress": {"epoch": 4, "epochs": 5, "step": 40, "steps": 94, "fraction": 0.685},
    "loss": 0.398, "accuracy": 0.866, "val_loss": 0.371, "val_accuracy": 0.874,
    "elapsed_s": 84.2, "eta_s": 38.7, "history": [EPOCH_EXAMPLE], "model_version": None,
    "activation": None, "error": None, "cancel_requested": False, "attempts": 1,
    "artifacts": [], "created_at": "2026-11-25T09:30:00.004+00:00",
    "started_at": "2026-11-25T09:30:01.250+00:00", "finished_at": None}
MODEL_EXAMPLE: dict[str, Any] = {
    "version": "v1", "active": False, "registered_at": "2026-11-25T17:40:02.118+00:00",
    "source": "seed:default.safetensors", "arch": "default",
    "labels": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"],
    "metrics": {"train_seconds": 1493.5, "train_items": 60000},
    "dataset": {"name": "fashion-mnist", "split": "train", "items": 60000},
    "train_config": {"arch": "default", "epochs": 50, "batch_size": 128, "lr": 0.003},
    "history": [EPOCH_EXAMPLE], "weights_sha256": "9c4f...e1", "parameters": 289130,
    "parent": None, "created_at": "2026-11-25T17:23:57.667+00:00", "size_bytes": 1161392,
    "formats": ["safetensors", "onnx"]}


class TrainingJobCreate(BaseModel):
    """POST /v1/training-jobs. `recipe` names the starting point (`fashion-tagger train
    --recipe`); a field given here overrides it. The job records the resolved values."""

    # extra="forbid": a misspelt field is an error, not a default
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [TRAINING_REQUEST_EXAMPLE]})

    dataset: str = Field(FASHION_MNIST, description="'fashion-mnist' or a dataset id")
    recipe: RecipeName = Field(
        "default-fast", description="default-fast: 18 epochs, about 7 min on 2 CPU cores;"
        " default: the shipped model's 50-epoch recipe; baseline: the original project's;"
        " finetune: from `init_from`, a low decaying learning rate, weights averaged;"
        " photo-finetune: your own labelled photos on the photo model (`init_from` it), the"
        " same in small batches for at least 2,400 steps")
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
    model_config = examples(TRAINING_JOB_EXAMPLE["progress"])

    epoch: int = Field(description="1-based; 0 before the first step")
    epochs: int
    step: int = Field(description="within the epoch")
    steps: int = Field(description="steps per epoch; 0 until training starts")
    fraction: float = Field(description="of the whole run, 0..1")


class EpochPublic(BaseModel):
    model_config = examples(EPOCH_EXAMPLE)

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    elapsed_s: float


class TrainingJobPublic(BaseModel):
    model_config = examples(TRAINING_JOB_EXAMPLE)

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
    model_config = examples({"items": [TRAINING_JOB_EXAMPLE]})

    items: list[TrainingJobPublic]


class ModelPublic(BaseModel):
    model_config = examples(MODEL_EXAMPLE)

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
    model_config = examples({"items": [MODEL_EXAMPLE], "active": "v2"})

    items: list[ModelPublic] = Field(description="oldest first")
    active: str | None


class DatasetClass(BaseModel):
    model_config = examples(DATASET_EXAMPLE["classes"][0])

    label: str
    count: int


class DatasetPublic(BaseModel):
    model_config = examples(DATASET_EXAMPLE)

    id: str
    name: str | None = Field(description="as given at upload")
    created_at: str
    labels: list[str] = Field(description="sorted: label i of a model trained on it")
    classes: list[DatasetClass]
    total: int
    size_bytes: int


class DatasetsPage(BaseModel):
    model_config = examples({"items": [DATASET_EXAMPLE]})

    items: list[DatasetPublic]
