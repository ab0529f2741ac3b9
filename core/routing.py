"""Two models, chosen per image: Fashion-MNIST images go to the Fashion-MNIST model, photos to
the photo model. One `predict(list) -> list` like Predictor, with each result's `route`.

Why two: the shipped Fashion-MNIST model is exact on its own dataset (its test split must not
move), while real photos need a model trained on what preprocessing makes of photos. A photo
checkpoint names its partner by weights digest (`route_fashion_mnist_to` in its metadata), so
a pair is never assembled from models that were not validated together.

Built from two predictors of any backend (the worker: from two registry versions):

    predictor = RoutedPredictor(photo, fmnist)      # raises ValueError on a mismatched pair

Torch-free, like core.predictor: the lean CPU worker routes too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.metadata import ModelMeta
from core.models import PHOTO_MODEL_PATH, SHIPPED_MODEL_PATH
from core.predictor import (
    DEFAULT_MAX_PIXELS,
    FASHION_MNIST_ROUTE,
    PHOTO_ROUTE,
    ItemError,
    Prediction,
    Predictor,
    StageTimes,
)
from core.preprocessing import ImageDecodeError, route_and_preprocess

ROUTES = (FASHION_MNIST_ROUTE, PHOTO_ROUTE)


class RoutedPredictor:
    """A photo Predictor and a Fashion-MNIST Predictor behind one predict_images."""

    def __init__(self, photo: Predictor, fmnist: Predictor) -> None:
        target = photo.meta.route_fashion_mnist_to
        if not target:
            raise ValueError("the photo model names no Fashion-MNIST model to route to"
                             " (route_fashion_mnist_to is empty in its metadata)")
        if target != fmnist.meta.weights_sha256:
            raise ValueError(f"the photo model routes Fashion-MNIST images to weights"
                             f" {target[:12]}, not to {fmnist.meta.weights_sha256[:12]}")
        if photo.labels != fmnist.labels:
            raise ValueError(f"label lists differ: {photo.labels} vs {fmnist.labels}")
        self.photo, self.fmnist = photo, fmnist
        self.meta = photo.meta  # the pair is described by the photo model's metadata
        self.labels = photo.labels
        self.backend = photo.backend
        self.version = photo.version  # a registry sets its own name, as with Predictor

    @property
    def versions(self) -> dict[str, str]:
        return {PHOTO_ROUTE: self.photo.version, FASHION_MNIST_ROUTE: self.fmnist.version}

    @property
    def review_below(self) -> float | None:
        return self.meta.review_below

    @classmethod
    def from_checkpoints(cls, photo: Path | bytes, fmnist: Path | bytes,
                         **kwargs) -> RoutedPredictor:
        return cls(Predictor.from_checkpoint(photo, **kwargs),
                   Predictor.from_checkpoint(fmnist, **kwargs))

    @classmethod
    def default(cls, **kwargs) -> RoutedPredictor:
        """The shipped pair: core/models/photo.safetensors beside default.safetensors."""
        return cls.from_checkpoints(PHOTO_MODEL_PATH, SHIPPED_MODEL_PATH, **kwargs)

    def predict_images(
        self, images: Sequence[bytes], top_k: int = 3, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> list[Prediction | ItemError]:
        """Decode each image once, route it, one batched forward pass per model."""
        return self.predict_images_timed(images, top_k, max_pixels)[0]

    def predict_images_timed(
        self, images: Sequence[bytes], top_k: int = 3, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> tuple[list[Prediction | ItemError], StageTimes]:
        start = time.perf_counter()
        routes: list[str | ItemError] = []
        arrays: dict[str, list[np.ndarray]] = {route: [] for route in ROUTES}
        for data in images:
            try:
                is_fmnist, array = route_and_preprocess(data, max_pixels,
                                                        self.photo.preprocessing)
            except ImageDecodeError as exc:
                routes.append(ItemError(str(exc)))
                continue
            route = FASHION_MNIST_ROUTE if is_fmnist else PHOTO_ROUTE
            arrays[route].append(array)
            routes.append(route)
        preprocessed = time.perf_counter()
        predictions = {route: iter(self._model(route).predict_arrays(arrays[route], top_k, route))
                       for route in ROUTES}
        results = [r if isinstance(r, ItemError) else next(predictions[r]) for r in routes]
        times = StageTimes(preprocessed - start, time.perf_counter() - preprocessed)
        return results, times

    def _model(self, route: str) -> Predictor:
        return self.fmnist if route == FASHION_MNIST_ROUTE else self.photo

    def logits(self, x: Any, route: str = PHOTO_ROUTE) -> Any:
        """`(N, 1, 28, 28)` tensor already preprocessed for `route` -> that model's raw
        logits."""
        return self._model(route).logits(x)


def routes_to(meta: ModelMeta, fmnist_path: Path = SHIPPED_MODEL_PATH) -> bool:
    """Whether a checkpoint is a photo model whose partner is the model at `fmnist_path`."""
    from core.metadata import read_meta

    if not meta.route_fashion_mnist_to or not Path(fmnist_path).exists():
        return False
    return read_meta(Path(fmnist_path).read_bytes()).weights_sha256 == meta.route_fashion_mnist_to


def serving_predictor(model: Path | None = None, **kwargs) -> Predictor | RoutedPredictor:
    """What `fashion-tagger predict` serves: with no model, the shipped pair (or the shipped
    Fashion-MNIST model alone where no photo model ships); a photo checkpoint that routes to
    the shipped Fashion-MNIST model, paired with it; any other checkpoint, alone."""
    if model is None:
        if PHOTO_MODEL_PATH.exists():
            return RoutedPredictor.default(**kwargs)
        return Predictor.from_checkpoint(SHIPPED_MODEL_PATH, **kwargs)
    predictor = Predictor.from_checkpoint(model, **kwargs)
    if routes_to(predictor.meta):
        return RoutedPredictor(predictor, Predictor.from_checkpoint(SHIPPED_MODEL_PATH, **kwargs))
    return predictor

