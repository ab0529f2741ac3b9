"""Datasets as in-memory uint8 tensors.

Fashion-MNIST fits in 55 MB, so each split is loaded into one tensor once; batches are
sliced from it (per-image PIL decoding through a DataLoader costs ~25% more per epoch).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from core.labels import FASHION_MNIST_LABELS


@dataclass(frozen=True)
class ImageSet:
    """Images `(N, 28, 28)` uint8 (white object on black) with labels `(N,)` int64."""

    images: torch.Tensor
    targets: torch.Tensor
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, index: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.targets[index], self.labels)

    def checksum(self) -> str:
        digest = hashlib.sha256(self.images.numpy().tobytes())
        digest.update(self.targets.numpy().tobytes())
        return digest.hexdigest()


def load_fashion_mnist(root: Path, split: str, download: bool = False) -> ImageSet:
    """Load `split` ("train" or "test") from a torchvision-layout directory.

    `root` is the folder holding `FashionMNIST/raw/`; with `download=True` torchvision
    fetches missing files (needs internet).
    """
    from torchvision.datasets import FashionMNIST

    if split not in ("train", "test"):
        raise ValueError(f"Unknown split {split!r}; choose one of: train, test")
    try:
        dataset = FashionMNIST(root=str(root), train=split == "train", download=download)
    except RuntimeError as exc:
        raise FileNotFoundError(
            f"Fashion-MNIST not found under {root} (expected {root}/FashionMNIST/raw/*-ubyte);"
            " pass --data-dir / set TAGGER_FASHION_MNIST_DIR, or use --download when online"
        ) from exc
    return ImageSet(dataset.data.clone(), dataset.targets.clone(), FASHION_MNIST_LABELS)


def train_val_split(data: ImageSet, val_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Carve a stratified validation set out of a training split, reproducibly."""
    generator = torch.Generator().manual_seed(seed)
    train_idx, val_idx = [], []
    for cls in range(len(data.labels)):
        idx = (data.targets == cls).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        n_val = round(len(idx) * val_fraction)
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    train = torch.cat(train_idx).sort().values
    val = torch.cat(val_idx).sort().values
    return data.subset(train), data.subset(val)


def limit(data: ImageSet, max_items: int | None, seed: int) -> ImageSet:
    """A random subset of at most `max_items` items, for quick runs."""
    if max_items is None or max_items >= len(data):
        return data
    generator = torch.Generator().manual_seed(seed)
    return data.subset(torch.randperm(len(data), generator=generator)[:max_items].sort().values)


@dataclass(frozen=True)
class FolderProblem:
    path: str
    error: str


def load_image_folder(
    root: Path, max_pixels: int = 40_000_000, preprocessing: str | None = None
) -> tuple[ImageSet, list[FolderProblem]]:
    """An ImageFolder-style dataset: one sub-folder per class, named by its label.

    Every image goes through the preprocessing of the model it will train (`preprocessing`,
    a core.preprocessing name; None: the Fashion-MNIST conversion), exactly as served images
    do; files that do not decode are returned as problems instead of failing the whole
    dataset.
    """
    from core.preprocessing import PREPROCESSING_VERSION, ImageDecodeError, preprocess

    preprocessing = preprocessing or PREPROCESSING_VERSION

    classes = sorted(
        p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    images, targets, problems = [], [], []
    for index, label in enumerate(classes):
        for path in sorted(p for p in (Path(root) / label).rglob("*") if p.is_file()):
            if path.name.startswith("."):
                continue
            try:
                images.append(torch.from_numpy(preprocess(path.read_bytes(), max_pixels,
                                                          preprocessing)))
                targets.append(index)
            except (ImageDecodeError, OSError) as exc:
                problems.append(FolderProblem(str(path.relative_to(root)), str(exc)))
    stacked = torch.stack(images) if images else torch.empty(0, 28, 28, dtype=torch.uint8)
    return ImageSet(stacked, torch.tensor(targets, dtype=torch.long), tuple(classes)), problems
