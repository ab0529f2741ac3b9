"""What a predictor returns, and how logits become it: numpy only, one implementation for every
backend (torch eager, onnxruntime with or without torch installed), so a lean CPU worker and a
torch worker on the same model give the same result, bit for bit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Prediction.route: which model of a routed pair (core.routing) tagged the image.
SINGLE, FASHION_MNIST_ROUTE, PHOTO_ROUTE = "single", "fashion-mnist", "photo"

# (N, C, H, W) float32 in [0, 1] -> (N, classes) float32 logits
LogitsFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ScoredLabel:
    label: str
    score: float


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


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) float32, in float32."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def tta_logits(run: LogitsFn, x: np.ndarray, tta: str, below: float = 1.0) -> np.ndarray:
    """Logits of `run` with test-time augmentation. "hflip" averages an image's logits with
    those of its mirror image, for the images whose own top probability is below `below`
    (1.0: every image): a confident answer rarely changes, and skipping its second forward
    pass saves most of the cost."""
    logits = np.array(run(x), dtype=np.float32)
    if tta == "none":
        return logits
    unsure = np.flatnonzero(softmax(logits).max(axis=1) < below)
    if unsure.size:
        mirrored = run(np.ascontiguousarray(x[unsure][..., ::-1]))
        logits[unsure] = (logits[unsure] + mirrored) / 2
    return logits


def to_predictions(logits: np.ndarray, labels: Sequence[str], top_k: int, temperature: float,
                   route: str = SINGLE) -> list[Prediction]:
    """(N, C) logits -> N predictions: calibrated probabilities, the `top_k` best, best first
    (ties keep the class order)."""
    if not len(logits):
        return []
    probs = softmax(logits / np.float32(temperature))
    k = max(1, min(top_k, len(labels)))
    best = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(probs, best, axis=1)
    return [
        Prediction(label=labels[int(idx[0])], label_index=int(idx[0]),
                   confidence=float(score[0]),
                   top_k=[ScoredLabel(labels[int(i)], float(s))
                          for s, i in zip(score, idx, strict=True)],
                   route=route)
        for score, idx in zip(scores, best, strict=True)
    ]


def as_batch(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """(H, W) uint8 images -> (N, 1, H, W) float32 in [0, 1], as training feeds the model."""
    if not arrays:
        return np.empty((0, 1, 28, 28), dtype=np.float32)
    return (np.stack(arrays)[:, None].astype(np.float32) / np.float32(255))
