"""Batch-level augmentation on tensors (no per-image Python loop).

All functions take and return `(N, 1, 28, 28)` float32 in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by `padding` and take a random 28x28 window per image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    rows = (torch.arange(h).unsqueeze(0) + dy).unsqueeze(2)  # (N, H, 1)
    cols = (torch.arange(w).unsqueeze(0) + dx).unsqueeze(1)  # (N, 1, W)
    batch = torch.arange(n).view(n, 1, 1)
    return padded[batch, 0, rows, cols].unsqueeze(1)


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def random_erasing(
    x: torch.Tensor,
    p: float,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.02, 0.2),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """Blank one random rectangle per chosen image (Zhong et al. 2017), vectorised."""
    n, _, h, w = x.shape
    area = torch.empty(n).uniform_(*scale, generator=generator) * h * w
    log_ratio = torch.empty(n).uniform_(*torch.tensor(ratio).log().tolist(), generator=generator)
    aspect = log_ratio.exp()
    eh = (area * aspect).sqrt().round().clamp(1, h).long()
    ew = (area / aspect).sqrt().round().clamp(1, w).long()
    top = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=generator) * (w - ew + 1)).long()
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = (
        (rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1))
    )
    chosen = (torch.rand(n, generator=generator) < p).view(n, 1, 1)
    return x.masked_fill((inside & chosen).unsqueeze(1), 0.0)


def augment_batch(
    x: torch.Tensor, generator: torch.Generator, crop_padding: int, flip: bool, erasing: float
) -> torch.Tensor:
    if crop_padding:
        x = random_crop(x, crop_padding, generator)
    if flip:
        x = random_hflip(x, generator)
    if erasing:
        x = random_erasing(x, erasing, generator)
    return x
