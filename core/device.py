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


def has_fast_bf16(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs in hardware here: CUDA with bf16, or a CPU with AMX or
    AVX512-BF16 (on this project's CPU, 2-3x faster training; emulated bf16 would be slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(cpu, name, lambda: False)() for name in probes)
