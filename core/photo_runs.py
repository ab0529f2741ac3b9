"""Training the photo model: Fashion-MNIST, synthetic worn shots and real photos mixed afresh
every epoch; then real-photos val decides the served test-time augmentation, fits the
temperature and the review threshold, and the checkpoint records all of it.

`fashion-tagger train --recipe photo --init-from core/models/default.safetensors` calls
`run_photo_training`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from core.architectures import Ensemble, ensemble_arch
from core.calibration import (
    choose_threshold,
    confidences,
    coverage_table,
    cross_fit,
    fit_temperature,
    reliability,
)
from core.checkpoint import ModelMeta, save_checkpoint
from core.data import ImageSet, train_val_split
from core.evaluation import compute_metrics
from core.photo_augment import worn_images
from core.photos import SOURCES, PhotoSet, load_photo_variants, load_photos, unlicensed
from core.plots import plot_confusion, plot_curves, plot_reliability
from core.predictions import tta_logits
from core.recipes import TrainConfig
from core.runs import CONFUSION_FILE, CURVES_FILE, METRICS_FILE, MODEL_FILE, RunOutput
from core.training import CancelHook, ProgressCallback, TrainResult, evaluate, train

RELIABILITY_FILE = "reliability.png"
REVIEW_ACCURACY = 0.95  # the unflagged results must be at least this accurate on val


@dataclass
class EpochMix:
    """Per epoch: `fmnist_items` random Fashion-MNIST images, the next `worn_items` worn
    shots, and every photo `photo_repeat` times as a random one of its variants."""

    fmnist: ImageSet
    worn: ImageSet
    photos: torch.Tensor  # (P, V, 28, 28) uint8; variant 0 is the photo as served
    photo_targets: torch.Tensor  # (P,) int64
    fmnist_items: int
    worn_items: int
    photo_repeat: int
    epoch: int = 0

    @property
    def labels(self) -> tuple[str, ...]:
        return self.fmnist.labels

    def __len__(self) -> int:
        return self.fmnist_items + self.worn_items + len(self.photos) * self.photo_repeat

    def for_epoch(self, generator: torch.Generator) -> ImageSet:
        fm = torch.randperm(len(self.fmnist), generator=generator)[:self.fmnist_items]
        start = self.epoch * self.worn_items
        worn = torch.arange(start, start + self.worn_items) % max(len(self.worn), 1)
        self.epoch += 1
        index = torch.arange(len(self.photos)).repeat(self.photo_repeat)
        variant = torch.randint(0, self.photos.shape[1], (len(index),), generator=generator)
        parts = [(self.fmnist.images[fm], self.fmnist.targets[fm]),
                 (self.photos[index, variant], self.photo_targets[index])]
        if self.worn_items:
            parts.insert(1, (self.worn.images[worn], self.worn.targets[worn]))
        return ImageSet(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
                        self.labels)


def build_mix(cfg: TrainConfig, fmnist_train: ImageSet, photos_root: Path
              ) -> tuple[EpochMix, PhotoSet]:
    photos, variants = load_photo_variants(photos_root, cfg.photos_sources, cfg.preprocessing,
                                           cfg.photo_variants, cfg.seed)
    worn_x, worn_y = worn_images(fmnist_train.images.numpy(), fmnist_train.targets.numpy(),
                                 cfg.worn_items * cfg.epochs, cfg.seed)
    worn = ImageSet(torch.from_numpy(worn_x), torch.from_numpy(worn_y), fmnist_train.labels)
    items = min(cfg.fmnist_items or len(fmnist_train), len(fmnist_train))
    mix = EpochMix(fmnist_train, worn, variants, photos.images.targets, items, cfg.worn_items,
                   cfg.photo_repeat)
    return mix, photos


@torch.inference_mode()
def photo_logits(model: torch.nn.Module, photos: PhotoSet, tta: str = "none",
                 tta_below: float = 1.0) -> torch.Tensor:
    """(N, C) logits of preprocessed photos, with the served test-time augmentation (the
    serving code's own, core.predictions.tta_logits)."""
    model = model.eval()
    x = photos.images.images.unsqueeze(1).float().div(255).numpy()
    logits = tta_logits(lambda b: model(torch.from_numpy(b)).float().numpy(), x, tta, tta_below)
    return torch.from_numpy(logits)


def photo_report(logits: torch.Tensor, photos: PhotoSet, temperature: float) -> dict:
    """Accuracy overall, per class and per source; calibration at `temperature`."""
    targets = photos.images.targets
    conf, predicted = confidences(logits, temperature)
    correct = predicted == targets
    metrics = compute_metrics(targets, predicted, photos.images.labels)
    sources = np.array(photos.sources())
    per_source = {s: float(correct[torch.from_numpy(sources == s)].double().mean())
                  for s in SOURCES if (sources == s).any()}
    bins, ece = reliability(conf, correct)
    return {"accuracy": metrics.accuracy, "count": metrics.count,
            "per_class": {c.label: c.recall for c in metrics.per_class if c.support},
            "per_source": per_source, "confusion": metrics.confusion, "ece": ece,
            "reliability": [b.model_dump() for b in bins],
            "coverage": [r.model_dump() for r in coverage_table(conf, correct)]}


def calibrate(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    """Temperature and review threshold fitted on val, and the 2-fold held-out estimate."""
    temperature = fit_temperature(logits, targets)
    conf, predicted = confidences(logits, temperature)
    threshold = choose_threshold(conf, predicted == targets, REVIEW_ACCURACY)
    kept = conf >= (threshold if threshold is not None else 1.01)
    return {"temperature": temperature, "review_below": threshold,
            "review_accuracy_target": REVIEW_ACCURACY,
            "unflagged_share": float(kept.double().mean()),
            "unflagged_accuracy": float((predicted == targets)[kept].double().mean())
            if kept.any() else None,
            "held_out_2fold": cross_fit(logits, targets, REVIEW_ACCURACY)}


def train_members(cfg: TrainConfig, mix: EpochMix, fm_val: ImageSet,
                  on_progress: ProgressCallback | None, should_stop: CancelHook | None,
                  init_state: dict | None) -> TrainResult:
    """`cfg.members` networks, each from `init_state` with its own seed (its own batches,
    variants and augmentation), served as one Ensemble; one network when members is 1.
    The history is the first member's; the seconds are all of them."""
    results = []
    for i in range(cfg.members):
        mix.epoch = 0  # every member sees the same worn shots, in its own order
        results.append(train(cfg.model_copy(update={"seed": cfg.seed + i}), mix, fm_val,
                             on_progress, should_stop, init_state))
    if cfg.members == 1:
        return results[0]
    model = Ensemble([r.model for r in results]).eval()
    return TrainResult(model=model, config=cfg, history=results[0].history,
                       seconds=sum(r.seconds for r in results))


def run_photo_training(
    cfg: TrainConfig, fmnist: ImageSet, photos_root: Path, out_dir: Path, dataset_info: dict,
    on_progress: ProgressCallback | None = None, should_stop: CancelHook | None = None,
    init_state: dict | None = None, parent: ModelMeta | None = None,
) -> RunOutput:
    """Train the photo model; `parent` (the Fashion-MNIST model it starts from) becomes the
    model Fashion-MNIST images are routed to."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fm_train, fm_val = train_val_split(fmnist, cfg.val_fraction, cfg.seed)
    mix, train_photos = build_mix(cfg, fm_train, photos_root)
    result = train_members(cfg, mix, fm_val, on_progress, should_stop, init_state)
    model = result.model

    val_photos = load_photos(photos_root, "val", SOURCES, cfg.preprocessing, "evaluate")
    plain = photo_logits(model, val_photos)
    flipped = photo_logits(model, val_photos, "hflip")
    targets = val_photos.images.targets
    accuracy = {t: float((lg.argmax(1) == targets).double().mean())
                for t, lg in (("none", plain), ("hflip", flipped))}
    tta = "hflip" if accuracy["hflip"] > accuracy["none"] else "none"
    logits = flipped if tta == "hflip" else plain
    calibration = calibrate(logits, targets)
    report = photo_report(logits, val_photos, calibration["temperature"])
    metrics = {"train_seconds": round(result.seconds, 1), "train_items_per_epoch": len(mix),
               "photos_val_accuracy": report["accuracy"],
               "photos_val_per_class": report["per_class"],
               "photos_val_per_source": report["per_source"],
               "photos_val_tta_accuracy": accuracy, "calibration": calibration}
    if len(fm_val):
        metrics["fmnist_val_accuracy"] = evaluate(model, fm_val, torch.device("cpu"))[1]
        metrics["fmnist_val_items"] = len(fm_val)

    meta = ModelMeta(
        arch=ensemble_arch(cfg.arch, cfg.members), labels=list(fmnist.labels),
        preprocessing=cfg.preprocessing,
        input=f"(N, 1, 28, 28) float32 in [0, 1]: a photo through {cfg.preprocessing}",
        metrics=metrics, train_config=cfg.model_dump(),
        history=[asdict(h) for h in result.history],
        dataset={"fashion_mnist": {**dataset_info, "checksum": fmnist.checksum(),
                                   "items": len(fmnist)},
                 "photos": train_photos.info, "licensed": not unlicensed(cfg.photos_sources),
                 "worn_items_per_epoch": cfg.worn_items, "photos_val": val_photos.info},
        tta=tta, temperature=calibration["temperature"],
        review_below=calibration["review_below"],
        route_fashion_mnist_to=parent.weights_sha256 if parent is not None else None,
        parent={"weights_sha256": parent.weights_sha256, "arch": parent.arch,
                "train_config": parent.train_config} if parent is not None else None,
    )
    model_path = save_checkpoint(out_dir / MODEL_FILE, model, meta)
    plot_curves(result.history, out_dir / CURVES_FILE, f"photo model, {cfg.epochs} epochs")
    plot_confusion(report["confusion"], fmnist.labels, out_dir / CONFUSION_FILE,
                   f"real-photos val, accuracy {report['accuracy']:.4f}")
    plot_reliability(report["reliability"], out_dir / RELIABILITY_FILE,
                     f"real-photos val, T = {calibration['temperature']}")
    (out_dir / METRICS_FILE).write_text(json.dumps(
        {"metrics": metrics, "photos_val": report, "config": meta.train_config,
         "dataset": meta.dataset}, indent=2))
    return RunOutput(model_path, result, None)
