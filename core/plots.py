"""Matplotlib PNGs: training curves per epoch and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and workers

import matplotlib.pyplot as plt  # noqa: E402

from core.training import EpochStats  # noqa: E402


def plot_curves(history: Sequence[EpochStats], path: Path, title: str = "") -> Path:
    """Loss (left) and accuracy (right) per epoch, training vs validation."""
    epochs = [h.epoch for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h.train_loss for h in history], marker="o", label="train")
    ax_acc.plot(epochs, [h.train_accuracy for h in history], marker="o", label="train")
    if any(h.val_loss is not None for h in history):
        ax_loss.plot(epochs, [h.val_loss for h in history], marker="o", label="validation")
        ax_acc.plot(epochs, [h.val_accuracy for h in history], marker="o", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(
    confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str = ""
) -> Path:
    n = len(labels)
    size = max(5.0, 0.6 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(confusion, cmap="Blues")
    peak = max((max(row) for row in confusion), default=0)
    for i in range(n):
        for j in range(n):
            value = confusion[i][j]
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                    color="white" if value > peak / 2 else "black")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title or "Confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_reliability(bins: Sequence[dict], path: Path, title: str = "") -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with the
    number of items per bin underneath. `bins`: core.calibration.ReliabilityBin dumps."""
    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(5, 6), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    width = bins[0]["high"] - bins[0]["low"] if bins else 0.1
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    ax.bar(centres, [b["accuracy"] or 0 for b in bins], width=width * 0.9, color="tab:blue",
           alpha=0.8, label="accuracy")
    ax.plot([b["confidence"] for b in bins if b["count"]],
            [b["accuracy"] for b in bins if b["count"]], "o", color="tab:orange",
            label="(mean confidence, accuracy) of the bin")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=title or "Reliability")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax_n.bar(centres, [b["count"] for b in bins], width=width * 0.9, color="gray")
    ax_n.set(xlabel="confidence", ylabel="items")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
