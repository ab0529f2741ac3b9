"""In-process throughput: the Predictor per backend and batch size, and photo preprocessing."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from core.data import load_fashion_mnist
from core.models import SHIPPED_MODEL_PATH
from core.predictor import Predictor
from core.preprocessing import preprocess, preprocess_batch
from core.training import to_float


def best_rate(fn, items: int, repeats: int = 3) -> float:
    """Items per second of the fastest of `repeats` runs (after one warm-up)."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return items / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def predictor_throughput(data_dir: Path, model: Path = SHIPPED_MODEL_PATH,
                         batch_sizes=(1, 16, 64, 256, 1024), threads: int = 0) -> dict:
    x = to_float(load_fashion_mnist(data_dir, "test").images)  # (10000, 1, 28, 28)
    table = {}
    for backend in ("torch", "onnx"):
        predictor = Predictor.from_checkpoint(model, backend=backend, threads=threads,
                                              device="cpu")
        for batch in batch_sizes:
            predictor.micro_batch = batch
            n = len(x) if batch >= 16 else 1000  # batch 1 is slow: time 1,000 images
            rate = best_rate(lambda p=predictor, n=n: p.logits(x[:n]), n)
            table[f"{backend}/b{batch}"] = round(rate)
    best = max(table, key=table.get)
    return {"img_per_s": table, "best": best, "best_img_per_s": table[best],
            "threads": torch.get_num_threads()}


def product_photo(size=(600, 800), seed=0) -> bytes:
    """A synthetic catalogue photo: a dark garment-like shape on a white, slightly noisy canvas."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.polygon([(150, 120), (450, 120), (520, 300), (430, 320), (430, 700), (170, 700),
                  (170, 320), (80, 300)], fill=(40, 60, 90))
    noisy = np.clip(np.asarray(img, dtype=np.int16) + rng.integers(-3, 4, (size[1], size[0], 3)),
                    0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def preprocessing_throughput(data_dir: Path) -> dict:
    test = load_fashion_mnist(data_dir, "test").images[:2000]
    pngs = []
    for image in test:
        buffer = io.BytesIO()
        Image.fromarray(image.numpy()).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    photo = product_photo()
    photos = [photo] * 200
    return {
        "fashion_mnist_png_img_per_s": round(best_rate(lambda: preprocess_batch(pngs), len(pngs))),
        "photo_600x800_jpeg_img_per_s": round(best_rate(
            lambda: [preprocess(p) for p in photos], len(photos))),
        "photo_600x800_jpeg_ms": round(1000 / best_rate(
            lambda: [preprocess(p) for p in photos], len(photos)), 2),
    }
