"""The predictor: load a checkpoint once, then `predict(list) -> list` of the same length.

Backends: `torch` (eager, CPU or CUDA) and `onnx` (onnxruntime on CPU, which fuses conv+BN
and was faster on CPU here; see BENCHMARKS.md). `auto` picks onnx on CPU, torch on CUDA.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.checkpoint import ModelMeta, load_checkpoint, load_checkpoint_bytes
from core.device import resolve_device, set_threads
from core.models import SHIPPED_MODEL_PATH
from core.preprocessing import get_preprocessing, preprocess_batch

BACKENDS = ("auto", "torch", "onnx")
DEFAULT_MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class ScoredLabel:
    label: str
    score: float


# Prediction.route: which model of a routed pair (core.routing) tagged the image.
SINGLE, FASHION_MNIST_ROUTE, PHOTO_ROUTE = "single", "fashion-mnist", "photo"


@dataclass(frozen=True)
class Prediction:
    label: str
    label_index: int
    confidence: float  # softmax(logits / temperature): calibrated when the model has one
    top_k: list[ScoredLabel]
    route: str = SINGLE  # "single" (one model), or "fashion-mnist" | "photo" (routed)


@dataclass(frozen=True)
class StageTimes:
    """Seconds one predict_images call spent per stage (the worker's latency metrics)."""

    preprocess_s: float  # decode + preprocess every image
    inference_s: float  # the batched forward pass, softmax and top-k


@dataclass(frozen=True)
class ItemError:
    """A per-item failure (undecodable image...); the rest of the batch is unaffected."""

    error: str


def tta_logits(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tta: str,
               below: float = 1.0) -> torch.Tensor:
    """Logits of `run` with test-time augmentation. "hflip" averages an image's logits with
    those of its mirror image, for the images whose own top probability is below `below`
    (1.0: every image): a confident answer rarely changes, and skipping its second forward
    pass saves most of the cost."""
    logits = run(x)
    if tta == "none":
        return logits
    unsure = (logits.softmax(1).amax(1) < below).nonzero().squeeze(1)
    if len(unsure):
        logits[unsure] = (logits[unsure] + run(x[unsure].flip(-1))) / 2
    return logits


class Predictor:
    def __init__(
        self,
        model: nn.Module,
        meta: ModelMeta,
        device: str = "auto",
        backend: str = "auto",
        threads: int = 0,
        micro_batch: int = 512,
        onnx_cache_dir: Path | None = None,
        tta: str | None = None,
        tta_below: float | None = None,
    ) -> None:
        """`tta`: "none" | "hflip", and `tta_below`: see tta_logits; None = what the
        checkpoint's metadata says."""
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        self.threads = set_threads(threads)
        self.device = resolve_device(device)
        if backend == "auto":
            backend = "onnx" if self.device.type == "cpu" else "torch"
        if backend == "onnx" and self.device.type != "cpu":
            raise ValueError("the onnx backend runs on the CPU; use backend 'torch' for CUDA")
        self.backend = backend
        self.meta = meta
        self.labels = list(meta.labels)
        self.version = meta.weights_sha256[:12] or "unversioned"
        self.micro_batch = micro_batch
        self.tta = meta.tta if tta is None else tta
        self.tta_below = meta.tta_below if tta_below is None else tta_below
        if self.tta not in ("none", "hflip"):
            raise ValueError(f"Unknown tta {self.tta!r}; choose none or hflip")
        self.preprocessing = get_preprocessing(meta.preprocessing).name
        self.temperature = meta.temperature
        self.input_shape = tuple(meta.input_shape)
        self._logits = self._make_runner(model, onnx_cache_dir)

    @classmethod
    def from_checkpoint(cls, source: Path | bytes, **kwargs) -> Predictor:
        model, meta = (
            load_checkpoint_bytes(source) if isinstance(source, bytes) else load_checkpoint(source)
        )
        return cls(model, meta, **kwargs)

    @classmethod
    def default(cls, **kwargs) -> Predictor:
        """The shipped model."""
        return cls.from_checkpoint(SHIPPED_MODEL_PATH, **kwargs)

    def _make_runner(
        self, model: nn.Module, onnx_cache_dir: Path | None
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        model = model.eval()
        if self.backend == "onnx":
            from core.export import INPUT_NAME, cached_onnx, ort_session

            session = ort_session(
                cached_onnx(model, self.meta.weights_sha256, onnx_cache_dir,
                            tuple(self.meta.input_shape)), self.threads
            )

            def run_onnx(x: torch.Tensor) -> torch.Tensor:
                (logits,) = session.run(None, {INPUT_NAME: x.numpy().astype(np.float32)})
                return torch.from_numpy(logits)

            return run_onnx

        model = model.to(self.device, memory_format=torch.channels_last)

        def run_torch(x: torch.Tensor) -> torch.Tensor:
            x = x.to(self.device, memory_format=torch.channels_last)
            return model(x).float().cpu()

        return run_torch

    @torch.inference_mode()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """`(N, 1, 28, 28)` float32 in [0, 1] -> `(N, C)` logits (uncalibrated: divide by
        `temperature` before the softmax), in micro-batches."""
        if len(x) == 0:
            return torch.empty(0, len(self.labels))
        step = self.micro_batch
        return torch.cat([self._batch_logits(x[i:i + step]) for i in range(0, len(x), step)])

    def _batch_logits(self, x: torch.Tensor) -> torch.Tensor:
        return tta_logits(self._logits, x, self.tta, self.tta_below)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """`(N, C)` calibrated class probabilities: softmax(logits / temperature)."""
        return (self.logits(x) / self.temperature).softmax(1)

    def predict_tensor(self, x: torch.Tensor, top_k: int = 3,
                       route: str = SINGLE) -> list[Prediction]:
        probs = self.probabilities(x)  # (N, C)
        k = max(1, min(top_k, len(self.labels)))
        scores, indices = probs.topk(k, dim=1)
        return [
            Prediction(
                label=self.labels[int(idx[0])],
                label_index=int(idx[0]),
                confidence=float(score[0]),
                top_k=[ScoredLabel(self.labels[int(i)], float(s))
                       for s, i in zip(score, idx, strict=True)],
                route=route,
            )
            for score, idx in zip(scores.tolist(), indices.tolist(), strict=True)
        ]

    def predict_images(
        self, images: Sequence[bytes], top_k: int = 3, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> list[Prediction | ItemError]:
        """Decode and preprocess each image, then one batched forward pass over the good ones."""
        return self.predict_images_timed(images, top_k, max_pixels)[0]

    def predict_images_timed(
        self, images: Sequence[bytes], top_k: int = 3, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> tuple[list[Prediction | ItemError], StageTimes]:
        """predict_images, and the time each stage took."""
        start = time.perf_counter()
        # (N_ok, 1, 28, 28) in the preprocessing the checkpoint names
        batch, errors = preprocess_batch(images, max_pixels, self.preprocessing)
        preprocessed = time.perf_counter()
        predictions = iter(self.predict_tensor(batch, top_k))
        times = StageTimes(preprocessed - start, time.perf_counter() - preprocessed)
        return [ItemError(err) if err is not None else next(predictions) for err in errors], times
