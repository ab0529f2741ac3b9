"""A complete training run: data -> train -> validation metrics -> checkpoint + artifacts.

The CLI (`fashion-tagger train`) and the Celery training task both call `run_training`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from core.checkpoint import ModelMeta, save_checkpoint
from core.data import ImageSet, limit, train_val_split
from core.device import resolve_device
from core.evaluation import Metrics, compute_metrics
from core.plots import plot_confusion, plot_curves
from core.recipes import TrainConfig
from core.training import CancelHook, ProgressCallback, TrainResult, evaluate, train

MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion.png"


@dataclass
class RunOutput:
    model_path: Path
    result: TrainResult
    val_metrics: Metrics | None


def run_training(
    cfg: TrainConfig,
    data: ImageSet,
    out_dir: Path,
    dataset_info: dict,
    on_progress: ProgressCallback | None = None,
    should_stop: CancelHook | None = None,
    init_state: dict | None = None,
    parent: ModelMeta | None = None,
) -> RunOutput:
    """Train on `data` (a training split; a validation set is carved out of it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = limit(data, cfg.max_train_items, cfg.seed)
    if cfg.val_fraction > 0:
        train_set, val_set = train_val_split(data, cfg.val_fraction, cfg.seed)
    else:
        train_set, val_set = data, None
    if parent is not None:
        check_compatible(cfg, data, parent)
    cfg = cfg.for_train_items(len(train_set))
    result = train(cfg, train_set, val_set, on_progress, should_stop, init_state)

    val_metrics = None
    metrics: dict = {"train_seconds": round(result.seconds, 1),
                     "train_items": len(train_set)}
    if val_set is not None and len(val_set):
        _, _, predicted = evaluate(result.model, val_set, resolve_device("cpu"))
        val_metrics = compute_metrics(val_set.targets, predicted, data.labels)
        metrics["val_accuracy"] = val_metrics.accuracy
        metrics["val_items"] = len(val_set)
        plot_confusion(val_metrics.confusion, data.labels, out_dir / CONFUSION_FILE,
                       f"{cfg.arch}: validation confusion matrix")
    plot_curves(result.history, out_dir / CURVES_FILE, f"{cfg.arch}, {cfg.epochs} epochs")

    meta = ModelMeta(
        arch=cfg.arch,
        labels=list(data.labels),
        metrics=metrics,
        train_config=cfg.model_dump(),
        history=[asdict(h) for h in result.history],
        dataset={**dataset_info, "checksum": data.checksum(), "items": len(data)},
        parent=parent_summary(parent) if parent is not None else None,
        **({name: getattr(parent, name) for name in SERVED_LIKE_PARENT}
           if parent is not None else {}),
    )
    model_path = save_checkpoint(out_dir / MODEL_FILE, result.model, meta)
    report = {"metrics": metrics, "validation": val_metrics.model_dump() if val_metrics else None,
              "history": meta.history, "config": meta.train_config}
    (out_dir / METRICS_FILE).write_text(json.dumps(report, indent=2))
    return RunOutput(model_path, result, val_metrics)


# A fine-tuned model is served as the model it starts from: its preprocessing and input, its
# test-time augmentation, its calibration and review threshold (fitted for the parent; a
# close start for a fine-tune), and the partner it routes Fashion-MNIST images to.
SERVED_LIKE_PARENT = ("preprocessing", "input_shape", "tta", "tta_below", "temperature",
                      "review_below", "route_fashion_mnist_to")


def check_compatible(cfg: TrainConfig, data: ImageSet, parent: ModelMeta) -> None:
    """Fine-tuning keeps the architecture and the label list of the model it starts from."""
    if parent.arch != cfg.arch:
        raise ValueError(f"init_from model has arch {parent.arch!r}, not {cfg.arch!r}")
    if list(parent.labels) != list(data.labels):
        raise ValueError(f"init_from model has labels {parent.labels}, the dataset"
                         f" {list(data.labels)}")


def parent_summary(parent: ModelMeta) -> dict:
    return {"weights_sha256": parent.weights_sha256, "arch": parent.arch,
            "train_config": parent.train_config, "metrics": parent.metrics,
            "dataset": parent.dataset, "created_at": parent.created_at}
