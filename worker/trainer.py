"""Running one training job: the same `core.runs.run_training` as `fashion-tagger train`, fed
from Redis (the request, a dataset, an initial model) and writing back to it (progress,
artifacts, a new registry version).

Imports torch: only the process that runs the training task imports this module (lazily, see
worker.tasks). A cancelled, failed or interrupted run registers nothing: the version is added
in one script after the checkpoint and its ONNX export are complete in memory.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import redis
import torch
from celery.exceptions import SoftTimeLimitExceeded

from core.checkpoint import ModelMeta, load_checkpoint_bytes
from core.data import ImageSet, load_fashion_mnist, load_image_folder
from core.export import check_onnx, export_onnx
from core.labels import match_labels
from core.recipes import TrainConfig, recipe
from core.runs import CONFUSION_FILE, CURVES_FILE, METRICS_FILE, run_training
from core.settings import Settings
from core.training import TrainingCancelled, to_float
from store.datasets import FASHION_MNIST, DatasetStore
from store.registry import ModelRegistry, activation_decision
from store.training import TrainingStore
from worker.trainprogress import ProgressReporter

log = logging.getLogger(__name__)

BASE_RECIPE = "default-fast"  # for a request stored without a `recipe` (older jobs)
ARTIFACT_TYPES = {CURVES_FILE: "image/png", CONFUSION_FILE: "image/png",
                  METRICS_FILE: "application/json"}
REQUEST_FIELDS = ("arch", "epochs", "batch_size", "lr", "augment", "seed", "max_train_items")


class TrainingJobError(Exception):
    """A problem with the job's inputs found by the worker (reported as the job's error)."""


def run_claimed_job(store: TrainingStore, reporter: ProgressReporter, settings: Settings,
                    job_id: str) -> None:
    """Run a job this worker claimed (worker.trainprogress.claim_job) while its lease is kept;
    whatever happens, the job ends with a status and a reason."""
    job = store.get(job_id)
    if job is None:
        return
    request = json.loads(job["request"])
    try:
        fields, artifacts = train_and_register(store.r, settings, job_id, request, reporter)
        store.finish(job_id, "succeeded", fields, artifacts)
    except TrainingCancelled:
        if reporter.stop_reason == "lost":
            log.warning("training job %s was ended elsewhere; stopped", job_id)
        store.finish(job_id, "cancelled")
    except SoftTimeLimitExceeded:
        store.finish(job_id, "failed", {"error": "time limit exceeded"
                                                 " (TAGGER_TRAINING_TIME_LIMIT_S)"})
    except Exception as exc:  # the job must end with a reason, whatever went wrong
        log.exception("training job %s failed", job_id)
        store.finish(job_id, "failed", {"error": f"{type(exc).__name__}: {exc}"[:2000]})


def train_and_register(client: redis.Redis, settings: Settings, job_id: str,
                       request: dict[str, Any], reporter: ProgressReporter
                       ) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Train, export, register, maybe activate; returns the job's final fields and artifacts."""
    registry = ModelRegistry(client)
    cfg = train_config(request, settings)
    init_state, parent = initial_model(registry, request.get("init_from"))
    # The images go through the preprocessing of the model being trained (a photo model's
    # segmentation, for one), as they will when it serves them.
    data, dataset_info = load_data(client, settings, request["dataset"], parent)
    with tempfile.TemporaryDirectory(prefix="tagger-train-") as tmp:
        out = Path(tmp)
        # With a parent, run_training checks arch and labels again (the API did at submit).
        run = run_training(cfg, data, out, dataset_info, reporter.on_progress,
                           reporter.should_stop, init_state, parent)
        checkpoint = run.model_path.read_bytes()
        artifacts = {name: (out / name).read_bytes() for name in ARTIFACT_TYPES
                     if (out / name).exists()}
    # ONNX is made here, where torch and the trained model are at hand (the API has neither),
    # and checked against torch on training images before it is stored.
    onnx = export_onnx(run.result.model, tuple(cfg_input_shape(parent)))
    check_onnx(onnx, run.result.model, to_float(data.images[:32]))
    reporter.renew()  # a cancel that came in during export still wins: nothing registered
    if reporter.should_stop():
        raise TrainingCancelled()
    version = registry.register(checkpoint, f"training-job:{job_id}", onnx)
    assert version is not None
    new, active_name = registry.get(version), registry.active()
    active = registry.get(active_name) if active_name else None
    assert new is not None
    activate, activation = activation_decision(request["activate"], new, active)
    if activate:
        registry.activate(version)
    log.info("training job %s registered %s (%s)", job_id, version, activation)
    val = run.val_metrics.accuracy if run.val_metrics else ""
    return ({"model_version": version, "activation": activation, "val_accuracy": val},
            artifacts)


def train_config(request: dict[str, Any], settings: Settings) -> TrainConfig:
    base = recipe(request.get("recipe", BASE_RECIPE)).model_dump()
    overrides = {name: request[name] for name in REQUEST_FIELDS if name in request}
    return TrainConfig.model_validate({**base, **overrides, "threads": settings.torch_threads,
                                       "device": settings.device})


def load_data(client: redis.Redis, settings: Settings, dataset: str,
              parent: ModelMeta | None = None) -> tuple[ImageSet, dict[str, Any]]:
    """The training images, preprocessed as the model being trained preprocesses (the
    parent's preprocessing when fine-tuning), and with a parent, labelled in its label order
    (a dataset's classes are its folders, sorted: core.labels.match_labels pairs them)."""
    if dataset == FASHION_MNIST:
        data = load_fashion_mnist(settings.fashion_mnist_dir, "train")
        return data, {"name": FASHION_MNIST, "split": "train"}
    store = DatasetStore(client)
    record = store.get(dataset)
    if record is None:
        raise TrainingJobError(f"dataset {dataset} not found")
    with tempfile.TemporaryDirectory(prefix="tagger-dataset-") as tmp:
        # Folders named by label index, not by label: labels are client text, never paths.
        for label, n, data in store.iter_images(dataset):
            folder = Path(tmp) / f"{label:04d}"
            folder.mkdir(exist_ok=True)
            (folder / str(n)).write_bytes(data)
        images, problems = load_image_folder(Path(tmp), settings.max_image_pixels,
                                             parent.preprocessing if parent else None)
    labels = tuple(record["labels"])
    if len(images.labels) != len(labels):
        raise TrainingJobError(f"dataset {dataset}: only {len(images.labels)} of"
                               f" {len(labels)} classes have images")
    info = {"name": "dataset", "id": dataset, "unusable_images": len(problems)}
    if parent is None:
        return ImageSet(images.images, images.targets, labels), info
    try:
        order = torch.tensor(match_labels(parent.labels, labels))
    except ValueError as exc:
        raise TrainingJobError(f"dataset {dataset}: {exc}") from exc
    info["classes"] = {name: parent.labels[i] for name, i in zip(labels, order.tolist(),
                                                                  strict=True)}
    return ImageSet(images.images, order[images.targets], tuple(parent.labels)), info


def cfg_input_shape(parent: ModelMeta | None) -> list[int]:
    """One image's (C, H, W): the parent's when fine-tuning, else the default 28x28."""
    return list(parent.input_shape) if parent else [1, 28, 28]


def initial_model(registry: ModelRegistry, version: str | None
                  ) -> tuple[dict | None, ModelMeta | None]:
    """The weights to fine-tune from and their metadata (recorded as the new model's parent)."""
    if not version:
        return None, None
    checkpoint = registry.checkpoint(version)
    if checkpoint is None:
        raise TrainingJobError(f"init_from: model version {version} not found")
    model, meta = load_checkpoint_bytes(checkpoint)
    return model.state_dict(), meta
