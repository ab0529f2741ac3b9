"""Device and thread selection, done where the work runs (never in a prefork parent)."""

from __future__ import annotations

import torch

from core.settings import available_cores


def resolve_device(device: str) -> torch.device:
    """`auto` -> CUDA when present, else CPU; `cuda` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"Unknown device {device!r}; choose one of: auto, cpu, cuda")
    return torch.device(device)


def set_threads(threads: int) -> int:
    """Use `threads` intra-op threads (0 = one per available core); returns the count."""
    count = threads or available_cores()
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
