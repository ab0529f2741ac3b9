"""Training as plain functions, shared by the CLI and the Celery training task.

`train(cfg, train_set, val_set)` returns the trained model and its per-epoch history;
callers save it (core.checkpoint) and evaluate it on data they choose.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from core.architectures import build_model
from core.augment import augment_batch
from core.data import ImageSet
from core.device import has_fast_bf16, resolve_device, set_threads
from core.recipes import TrainConfig


@dataclass(frozen=True)
class Progress:
    """One report to the progress callback: after each step and after each epoch."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based within the epoch
    steps: int
    loss: float  # running mean over the epoch so far
    accuracy: float  # running training accuracy over the epoch so far
    lr: float
    elapsed_s: float
    epoch_end: bool = False
    val_loss: float | None = None  # set on epoch-end reports when there is a validation set
    val_accuracy: float | None = None


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    elapsed_s: float


@dataclass
class TrainResult:
    model: nn.Module
    config: TrainConfig
    history: list[EpochStats] = field(default_factory=list)
    seconds: float = 0.0


class TrainingCancelled(Exception):
    """Raised when the cancel hook asks the run to stop; no model is produced."""


ProgressCallback = Callable[[Progress], None]
CancelHook = Callable[[], bool]


class EpochData(Protocol):
    """Training data drawn afresh every epoch (core.photo_runs.EpochMix): `len` items each."""

    labels: tuple[str, ...]

    def __len__(self) -> int: ...

    def for_epoch(self, generator: torch.Generator) -> ImageSet: ...


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """`(N, 28, 28)` uint8 -> `(N, 1, 28, 28)` float32 in [0, 1]."""
    return images.unsqueeze(1).float().div_(255)


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True,
                           weight_decay=cfg.weight_decay)


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle" and total > 2:
        # Warm up for a quarter of the run, and for at least two steps on tiny runs.
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total, pct_start=max(0.25, 2.0 / total)
        )
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


@torch.inference_mode()
def evaluate(
    model: nn.Module, data: ImageSet, device: torch.device, batch_size: int = 1000
) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy, accuracy and predicted class per item `(N,)` int64."""
    model.eval()
    loss_sum, preds = 0.0, []
    for start in range(0, len(data), batch_size):
        x = to_float(data.images[start:start + batch_size])
        x = x.to(device, memory_format=torch.channels_last)
        y = data.targets[start:start + batch_size].to(device)
        logits = model(x).float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        preds.append(logits.argmax(1).cpu())
    predicted = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)
    n = max(len(data), 1)
    return loss_sum / n, (predicted == data.targets).float().mean().item(), predicted


def train_one_epoch(
    model: nn.Module,
    data: ImageSet,
    cfg: TrainConfig,
    optimizer: torch.optim.Optimizer,
    scheduler,
    device: torch.device,
    generator: torch.Generator,
    report: Callable[[int, int, float, float], None],
    should_stop: CancelHook,
    ema: AveragedModel | None = None,
) -> tuple[float, float]:
    model.train()
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    order = torch.randperm(len(data), generator=generator)
    steps = math.ceil(len(data) / cfg.batch_size)
    loss_sum, correct, seen = 0.0, 0, 0
    use_amp = cfg.amp and has_fast_bf16(device)
    for step in range(steps):
        if should_stop():
            raise TrainingCancelled()
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        x = to_float(data.images[idx])  # (B, 1, 28, 28)
        if cfg.augment:
            x = augment_batch(x, generator, cfg.crop_padding, cfg.hflip, cfg.random_erasing)
        x = x.to(device, non_blocking=True, memory_format=torch.channels_last)
        y = data.targets[idx].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x)
            loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        loss_sum += loss.item() * len(idx)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(idx)
        report(step + 1, steps, loss_sum / seen, correct / seen)
    return loss_sum / seen, correct / seen


def train(
    cfg: TrainConfig,
    train_set: ImageSet | EpochData,
    val_set: ImageSet | None,
    on_progress: ProgressCallback | None = None,
    should_stop: CancelHook | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train `cfg.arch` on `train_set`, reporting validation metrics after every epoch."""
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    generator = seed_everything(cfg.seed)
    model = build_model(cfg.arch, len(train_set.labels))
    if init_state is not None:
        model.load_state_dict(init_state)
    # channels_last made the CPU (oneDNN) training step ~30% faster here.
    model.to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    scheduler = make_scheduler(cfg, optimizer, steps_per_epoch)
    on_progress = on_progress or (lambda _: None)
    should_stop = should_stop or (lambda: False)
    # use_buffers: BN running statistics are averaged with the weights, so the averaged
    # model needs no extra pass over the data to recompute them.
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),
                         use_buffers=True) if cfg.ema_decay else None)
    served = ema.module if ema is not None else model
    result = TrainResult(model=model, config=cfg)
    start = time.perf_counter()

    for epoch in range(1, cfg.epochs + 1):
        def report(step: int, steps: int, loss: float, acc: float, epoch: int = epoch) -> None:
            on_progress(Progress(epoch, cfg.epochs, step, steps, loss, acc,
                                 scheduler.get_last_lr()[0], time.perf_counter() - start))

        epoch_set = (train_set.for_epoch(generator) if hasattr(train_set, "for_epoch")
                     else train_set)
        loss, acc = train_one_epoch(model, epoch_set, cfg, optimizer, scheduler, device,
                                    generator, report, should_stop, ema)
        val_loss = val_acc = None
        if val_set is not None and len(val_set):
            val_loss, val_acc, _ = evaluate(served, val_set, device)
        stats = EpochStats(epoch, loss, acc, val_loss, val_acc, scheduler.get_last_lr()[0],
                           time.perf_counter() - start)
        result.history.append(stats)
        on_progress(Progress(epoch, cfg.epochs, steps_per_epoch, steps_per_epoch, loss, acc,
                             stats.lr, stats.elapsed_s, True, val_loss, val_acc))
    result.seconds = time.perf_counter() - start
    result.model = served.cpu().to(memory_format=torch.contiguous_format).eval()
    return result
