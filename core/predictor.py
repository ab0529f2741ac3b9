"""The predictor: load a model once, then `predict(list) -> list` of the same length.

Backends compute the logits: `onnx` (onnxruntime on the CPU, which fuses conv+BN and was
faster on CPU here; see BENCHMARKS.md) and `torch` (eager, CPU or CUDA); `auto` picks onnx on
CPU, torch on CUDA. Everything else (preprocessing, test-time augmentation, calibration,
top-k) is numpy, shared by all backends (core.predictions).

This module imports no torch: `Predictor.from_onnx` serves an ONNX export with onnxruntime
alone (the lean CPU worker); `Predictor.from_checkpoint` loads the weights, and with them
torch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.metadata import ModelMeta
from core.models import SHIPPED_MODEL_PATH
from core.predictions import (  # noqa: F401 - the predictor's public types, importable here
    FASHION_MNIST_ROUTE,
    PHOTO_ROUTE,
    SINGLE,
    ItemError,
    LogitsFn,
    Prediction,
    ScoredLabel,
    StageTimes,
    as_batch,
    to_predictions,
    tta_logits,
)
from core.preprocessing import ImageDecodeError, get_preprocessing, preprocess

BACKENDS = ("auto", "torch", "onnx")
DEFAULT_MAX_PIXELS = 40_000_000
INPUT_NAME = "images"  # the ONNX graph's input, (N, *input_shape) float32 in [0, 1]


def onnx_runner(onnx_bytes: bytes, threads: int) -> LogitsFn:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {INPUT_NAME: x})[0]

    return run


class Predictor:
    def __init__(self, run: LogitsFn, meta: ModelMeta, backend: str, threads: int = 1,
                 micro_batch: int = 512, tta: str | None = None,
                 tta_below: float | None = None) -> None:
        """`run`: the backend's forward pass. `tta`: "none" | "hflip", and `tta_below`: see
        core.predictions.tta_logits; None = what the checkpoint's metadata says."""
        self._run = run
        self.meta = meta
        self.backend = backend
        self.threads = threads
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

    @property
    def review_below(self) -> float | None:
        return self.meta.review_below

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_onnx(cls, onnx_bytes: bytes, meta: ModelMeta, threads: int = 1,
                  **kwargs: Any) -> Predictor:
        """Serve an ONNX export with onnxruntime; torch is not imported."""
        return cls(onnx_runner(onnx_bytes, threads), meta, "onnx", threads, **kwargs)

    @classmethod
    def from_model(cls, model: Any, meta: ModelMeta, device: str = "auto",
                   backend: str = "auto", threads: int = 0, onnx_cache_dir: Path | None = None,
                   **kwargs: Any) -> Predictor:
        """Serve a torch model (`nn.Module`), eagerly or through its ONNX export."""
        import torch

        from core.device import resolve_device, set_threads

        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        threads = set_threads(threads)
        target = resolve_device(device)
        if backend == "auto":
            backend = "onnx" if target.type == "cpu" else "torch"
        if backend == "onnx" and target.type != "cpu":
            raise ValueError("the onnx backend runs on the CPU; use backend 'torch' for CUDA")
        model = model.eval()
        if backend == "onnx":
            from core.export import cached_onnx

            data = cached_onnx(model, meta.weights_sha256, onnx_cache_dir,
                               tuple(meta.input_shape))
            return cls(onnx_runner(data, threads), meta, backend, threads, **kwargs)
        model = model.to(target, memory_format=torch.channels_last)

        @torch.inference_mode()
        def run(x: np.ndarray) -> np.ndarray:
            batch = torch.from_numpy(x).to(target, memory_format=torch.channels_last)
            return model(batch).float().cpu().numpy()

        predictor = cls(run, meta, backend, threads, **kwargs)
        predictor.device = target
        return predictor

    @classmethod
    def from_checkpoint(cls, source: Path | bytes, **kwargs: Any) -> Predictor:
        from core.checkpoint import load_checkpoint, load_checkpoint_bytes

        model, meta = (load_checkpoint_bytes(source) if isinstance(source, bytes)
                       else load_checkpoint(source))
        return cls.from_model(model, meta, **kwargs)

    @classmethod
    def default(cls, **kwargs: Any) -> Predictor:
        """The shipped Fashion-MNIST model."""
        return cls.from_checkpoint(SHIPPED_MODEL_PATH, **kwargs)

    # -- inference ---------------------------------------------------------------------------

    def logits_array(self, x: np.ndarray) -> np.ndarray:
        """`(N, C, H, W)` float32 in [0, 1] -> `(N, classes)` logits with the model's test-time
        augmentation (uncalibrated: divide by `temperature` before the softmax), in
        micro-batches."""
        if not len(x):
            return np.empty((0, len(self.labels)), dtype=np.float32)
        x = np.ascontiguousarray(x, dtype=np.float32)
        step = self.micro_batch
        return np.concatenate([tta_logits(self._run, x[i:i + step], self.tta, self.tta_below)
                               for i in range(0, len(x), step)])

    def logits(self, x: Any) -> Any:
        """logits_array for a torch tensor (training and evaluation code), as a tensor."""
        import torch

        return torch.from_numpy(self.logits_array(x.detach().cpu().numpy()))

    def predict_arrays(self, arrays: Sequence[np.ndarray], top_k: int = 3,
                       route: str = SINGLE) -> list[Prediction]:
        """Preprocessed (H, W) uint8 images -> one prediction each (one batched forward)."""
        return to_predictions(self.logits_array(as_batch(arrays)), self.labels, top_k,
                              self.temperature, route)

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
        arrays: list[np.ndarray] = []
        errors: list[str | None] = []
        for data in images:
            try:
                arrays.append(preprocess(data, max_pixels, self.preprocessing))
                errors.append(None)
            except ImageDecodeError as exc:
                errors.append(str(exc))
        preprocessed = time.perf_counter()
        predictions = iter(self.predict_arrays(arrays, top_k))
        times = StageTimes(preprocessed - start, time.perf_counter() - preprocessed)
        return [ItemError(err) if err is not None else next(predictions) for err in errors], times
