"""Training jobs and models for responses: request checks against Redis, the public shapes,
and the reaper a read triggers (a running job whose worker stopped renewing its lease)."""

from __future__ import annotations

from api.auth import Tenant
from api.errors import ApiError, not_found
from api.schemas_training import ModelPublic, TrainingJobCreate, TrainingJobPublic
from core.labels import FASHION_MNIST_LABELS, match_labels
from store.datasets import FASHION_MNIST, DatasetStore
from store.registry import ModelRecord, ModelRegistry
from store.training import TrainingStore, lease_expired, training_summary

ARTIFACT_MEDIA_TYPES = {".png": "image/png", ".json": "application/json"}


def owner_filter(tenant: Tenant) -> str | None:
    """Whose datasets and training jobs the caller sees: its own; an operator, everyone's."""
    return None if tenant.operator else tenant.name


def check_request(body: TrainingJobCreate, registry: ModelRegistry,
                  datasets: DatasetStore, tenant: Tenant) -> None:
    """What pydantic cannot see: the dataset (the caller's own) and the model to fine-tune
    must exist, that model must have the arch and labels this run trains, and only an
    operator may let the run activate its model (every tenant would be served it)."""
    if body.activate != "never" and not tenant.operator:
        raise ApiError(403, f"activate={body.activate!r} needs an operator API key: a tenant's"
                            " run registers a version (pin it with `model` on POST /v1/jobs)"
                            " and an operator activates it")
    if body.dataset == FASHION_MNIST:
        labels = list(FASHION_MNIST_LABELS)
    else:
        dataset = datasets.get(body.dataset, owner_filter(tenant))
        if dataset is None:
            raise ApiError(422, f"dataset: unknown dataset {body.dataset!r}; use"
                                f" '{FASHION_MNIST}' or an id from POST /v1/datasets")
        labels = dataset["labels"]
    if body.init_from is None:
        if body.recipe in ("finetune", "photo-finetune"):
            raise ApiError(422, f"init_from: the {body.recipe} recipe starts from a model"
                                " version; name one (see GET /v1/models)")
        return
    base = registry.get(body.init_from)
    if base is None:
        raise ApiError(422, f"init_from: unknown model version {body.init_from!r};"
                            " see GET /v1/models")
    if base.arch != body.arch:
        raise ApiError(422, f"init_from: {base.version} is arch {base.arch!r}, not"
                            f" {body.arch!r}")
    try:  # a dataset's classes are its folders, sorted: matched to the model's labels
        match_labels(base.labels, labels)
    except ValueError as exc:
        raise ApiError(422, f"init_from: {base.version}'s labels and dataset {body.dataset}'s"
                            f" classes differ: {exc}") from None


def training_or_404(store: TrainingStore, job_id: str, tenant: Tenant) -> dict[str, str]:
    """The training job if the caller may see it; another tenant's is "not found" (404)."""
    job = store.get(job_id)
    if job is None or (not tenant.operator and job.get("tenant") != tenant.name):
        raise not_found("training job")
    return reaped(store, job)


def reaped(store: TrainingStore, job: dict[str, str]) -> dict[str, str]:
    """The job, ended first if its worker died: never `running` forever."""
    if lease_expired(job):
        store.reap(job["id"])
        return store.get(job["id"]) or job
    return job


def public_training(job: dict[str, str]) -> TrainingJobPublic:
    return TrainingJobPublic.model_validate(training_summary(job))


def public_model(record: ModelRecord, active: str | None) -> ModelPublic:
    meta = record.meta
    return ModelPublic(
        version=record.version, active=record.version == active,
        registered_at=record.registered_at, source=record.source, arch=record.arch,
        labels=record.labels, metrics=meta.get("metrics") or {},
        dataset=meta.get("dataset") or {}, train_config=meta.get("train_config"),
        history=meta.get("history") or [], weights_sha256=meta.get("weights_sha256", ""),
        parameters=meta.get("parameters", 0), parent=meta.get("parent"),
        created_at=meta.get("created_at"),
        size_bytes=record.size_bytes,
        formats=["safetensors", "onnx"] if record.has_onnx else ["safetensors"])


def model_or_404(registry: ModelRegistry, version: str) -> ModelRecord:
    record = registry.get(version)
    if record is None:
        raise not_found("model version")
    return record
