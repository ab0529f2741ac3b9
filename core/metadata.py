"""A checkpoint's metadata, and reading it from a `.safetensors` header without loading the
weights: torch-free, so a worker that serves ONNX never imports torch (core.checkpoint, which
writes and loads whole checkpoints, does).

The metadata carries the model's own arguments (arch, labels), how it is served (its
preprocessing, test-time augmentation, calibration, review threshold, the partner it routes
Fashion-MNIST images to) and how it was made (recipe, data checksums, history, metrics).
"""

from __future__ import annotations

import json
import platform
import struct
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from core.preprocessing import PREPROCESSING_VERSION

FORMAT_VERSION = 1
METADATA_KEY = "fashion_tagger"


class CheckpointError(ValueError):
    """A checkpoint that is unreadable, corrupt or does not match its declared model."""


class ModelMeta(BaseModel):
    format_version: int = FORMAT_VERSION
    arch: str
    labels: list[str]
    input: str = "(N, 1, 28, 28) float32 in [0, 1], white object on black"
    normalization: dict[str, float] | None = None  # applied inside the model
    preprocessing: str = PREPROCESSING_VERSION
    metrics: dict[str, Any] = Field(default_factory=dict)
    train_config: dict[str, Any] | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    dataset: dict[str, Any] = Field(default_factory=dict)
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    versions: dict[str, str] = Field(default_factory=lambda: library_versions())
    parent: dict[str, Any] | None = None  # the model this one was fine-tuned from
    # Test-time augmentation the model is served with: "hflip" averages the logits of each
    # image and its mirror image (clothes are left-right symmetric; training flips them too).
    tta: Literal["none", "hflip"] = "none"
    tta_below: float = Field(default=1.0, gt=0, le=1, description="flip only the images whose"
                             " top probability is below this (core.predictor.tta_logits)")
    # (C, H, W) of one image the model takes; ONNX export and its check use it.
    input_shape: list[int] = Field(default_factory=lambda: [1, 28, 28])
    # Calibration, fitted on validation: confidence = softmax(logits / temperature).
    temperature: float = Field(default=1.0, gt=0)
    # The default review threshold: a result whose confidence is below it needs review.
    review_below: float | None = Field(default=None, ge=0, le=1)
    # A photo model served beside a Fashion-MNIST model (core.routing): the weights_sha256 of
    # the model that takes the images that look like Fashion-MNIST.
    route_fashion_mnist_to: str | None = None
    weights_sha256: str = ""
    parameters: int = 0


def library_versions() -> dict[str, str]:
    """Recorded when a checkpoint is made (where torch is): the libraries that made it."""
    import torch
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__}


def read_meta(data: bytes) -> ModelMeta:
    """Parse our metadata from the safetensors header without loading the weights."""
    try:
        (header_len,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + header_len])
        raw = header["__metadata__"][METADATA_KEY]
        return ModelMeta.model_validate_json(raw)
    except (struct.error, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"not a fashion-tagger safetensors checkpoint ({exc!r})") from exc
    except ValidationError as exc:
        raise CheckpointError(f"checkpoint metadata is invalid: {exc}") from exc
