"""Checkpoints: one `.safetensors` file holding the weights and, in its header, our metadata.

The metadata carries the model's own arguments (arch, labels), so a file alone rebuilds the
model; a SHA-256 over the weights catches corruption that the format itself would not.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from core.architectures import build_model
from core.labels import FASHION_MNIST_LABELS
from core.metadata import (  # noqa: F401 - the checkpoint API, where callers look for it
    FORMAT_VERSION,
    METADATA_KEY,
    CheckpointError,
    ModelMeta,
    read_meta,
)


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def checkpoint_bytes(model: nn.Module, meta: ModelMeta) -> bytes:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    normalize = getattr(model, "normalize", None)
    meta = meta.model_copy(update={
        "weights_sha256": weights_digest(state),
        "parameters": sum(p.numel() for p in model.parameters()),
        "normalization": (
            {"mean": normalize.mean.item(), "std": normalize.std.item()} if normalize else None
        ),
    })
    return save_safetensors(state, metadata={METADATA_KEY: meta.model_dump_json()})


def save_checkpoint(path: Path, model: nn.Module, meta: ModelMeta) -> Path:
    """Write atomically: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = checkpoint_bytes(model, meta)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a model file is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint_bytes(data: bytes) -> tuple[nn.Module, ModelMeta]:
    meta = read_meta(data)
    if meta.format_version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format {meta.format_version} is not supported")
    try:
        state = load_safetensors(data)
    except SafetensorError as exc:
        raise CheckpointError(f"checkpoint is truncated or corrupt: {exc}") from exc
    if meta.weights_sha256 and weights_digest(state) != meta.weights_sha256:
        raise CheckpointError("checkpoint weights do not match their SHA-256: file is corrupt")
    try:
        model = build_model(meta.arch, len(meta.labels))
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(
            f"weights do not match arch {meta.arch!r} with {len(meta.labels)} labels: {exc}"
        ) from exc
    return model.eval(), meta


def load_checkpoint(path: Path) -> tuple[nn.Module, ModelMeta]:
    path = Path(path)
    if path.suffix == ".pth":
        return load_legacy_pth(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    return load_checkpoint_bytes(data)


def load_legacy_pth(path: Path) -> tuple[nn.Module, ModelMeta]:
    """Load the original project's `baseline` state_dict (`torch.save(model.state_dict())`).

    Its parameter names depend on how the original module was written (`conv1`/`fc1` or an
    `nn.Sequential`), so tensors are matched by order and shape.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad pickle/zip
        raise CheckpointError(f"cannot read .pth checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a state_dict of tensors")
    model = build_model("baseline", len(FASHION_MNIST_LABELS))
    target = model.state_dict()
    shapes_in = [tuple(v.shape) for v in state.values()]
    shapes_want = [tuple(v.shape) for v in target.values()]
    if shapes_in != shapes_want:
        raise CheckpointError(
            f"{path} does not hold the baseline network: tensor shapes {shapes_in},"
            f" expected {shapes_want}"
        )
    model.load_state_dict(dict(zip(target, state.values(), strict=True)))
    meta = ModelMeta(arch="baseline", labels=list(FASHION_MNIST_LABELS),
                     dataset={"source": f"legacy .pth {path.name}"})
    return model.eval(), meta
