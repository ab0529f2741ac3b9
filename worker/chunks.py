"""Classifying one chunk of a job: read its inputs, fetch its URLs, run ONE batched
`predict_images` call, write every item's result once. Torch-free: the predictor comes in.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from core.settings import Settings
from worker.fetch import FetchError, fetch_image
from worker.jobstore import JobStore
from worker.metrics import ChunkStats, record_chunk
from worker.results import PredictionLike, error_result, ok_result, skipped_result

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # a chunk that killed its worker this often gets per-item errors instead
FETCH_THREADS = 16  # URL fetches are I/O-bound: overlap them (bounds a chunk's wall time)


class PredictorLike(Protocol):
    version: str

    def predict_images(self, images: list[bytes], top_k: int = 3,
                       max_pixels: int = ...) -> list[Any]: ...


@dataclass(frozen=True)
class ItemFailure:
    error: str  # the shape of core.predictor.ItemError


class UnavailablePredictor:
    """Stands in when the model cannot be loaded: each item gets the reason as its error, so
    the job ends (and says why) instead of hanging."""

    version = "unavailable"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def predict_images(self, images: list[bytes], top_k: int = 3,
                       max_pixels: int = 0) -> list[ItemFailure]:
        return [ItemFailure(self.reason)] * len(images)


def classify_chunk(store: JobStore, predictor: PredictorLike, settings: Settings,
                   job_id: str, chunk: int) -> dict[str, str] | None:
    """Process chunk `chunk` of `job_id`. Returns the job record when this call finished the
    job (the caller then sends its webhook), else None.

    Safe to run twice (a redelivered task): items that already have a result are not
    recomputed, and the store writes and counts each item once.
    """
    job, attempt = store.start_chunk(job_id, chunk, predictor.version)
    if not job:
        log.info("job %s is gone (expired or discarded); dropping chunk %s", job_id, chunk)
        return None
    metas, written, inputs = store.chunk_inputs(job_id, chunk, int(job["chunk_size"]))
    start = chunk * int(job["chunk_size"])
    todo = [(start + i, meta) for i, (meta, done) in enumerate(zip(metas, written, strict=True))
            if done is None]
    stats = ChunkStats(queue=job["queue"])
    if job["status"] == "cancelled":
        results = [skipped_result(i, meta) for i, meta in todo]
    elif attempt > MAX_ATTEMPTS:
        message = f"gave up: a worker died {attempt - 1} times while processing this item's batch"
        results = [error_result(i, meta, message, None) for i, meta in todo]
    else:
        results = classify_items(predictor, settings, job, todo, inputs, stats)
    finished = store.record_results(job_id, chunk, results)
    record_chunk(store.r, stats, [r["status"] for r in results])
    return job if finished == 1 else None


def classify_items(predictor: PredictorLike, settings: Settings, job: dict[str, str],
                   todo: list[tuple[int, dict]], inputs: dict[int, bytes],
                   stats: ChunkStats | None = None) -> list[dict]:
    """Results for `todo` (index, metadata) in order; one predict_images call for the lot.
    `stats` gets the batch size, stage timings and model version for the metrics."""
    version = predictor.version
    threshold = float(job["review_threshold"]) if job["review_threshold"] else None
    payloads = _gather_inputs(settings, todo, inputs)
    ready = [(i, meta, data) for (i, meta), data in zip(todo, payloads, strict=True)
             if isinstance(data, bytes)]
    results = {i: error_result(i, meta, str(problem), version)
               for (i, meta), problem in zip(todo, payloads, strict=True)
               if not isinstance(problem, bytes)}
    if ready:
        try:
            predictions = _predict(predictor, [data for _, _, data in ready],
                                   int(job["top_k"]), settings.max_image_pixels,
                                   stats or ChunkStats(queue=job["queue"]))
        except Exception:  # a bug, not bad input: report it per item rather than hang the job
            log.exception("predict_images failed for job %s", job["id"])
            predictions = [None] * len(ready)
        for (i, meta, _), pred in zip(ready, predictions, strict=True):
            results[i] = _result(i, meta, pred, threshold, version)
    return [results[i] for i, _ in todo]


def _predict(predictor: PredictorLike, images: list[bytes], top_k: int, max_pixels: int,
             stats: ChunkStats) -> list[Any]:
    """One predict_images call, measured: per stage where the predictor can tell
    (core.predictor.Predictor.predict_images_timed), else the whole call as inference."""
    stats.batch_size, stats.model_version = len(images), predictor.version
    timed = getattr(predictor, "predict_images_timed", None)
    if timed is not None:
        predictions, times = timed(images, top_k=top_k, max_pixels=max_pixels)
        stats.preprocess_s, stats.inference_s = times.preprocess_s, times.inference_s
        return predictions
    start = time.perf_counter()
    predictions = predictor.predict_images(images, top_k=top_k, max_pixels=max_pixels)
    stats.inference_s = time.perf_counter() - start
    return predictions


def _result(index: int, meta: dict, pred: PredictionLike | Any, threshold: float | None,
            version: str) -> dict:
    if pred is None:
        return error_result(index, meta, "internal error while classifying", version)
    error = getattr(pred, "error", None)  # core.predictor.ItemError: the image did not decode
    if error is not None:
        return error_result(index, meta, error, version)
    return ok_result(index, meta, pred, threshold, version)


def _gather_inputs(settings: Settings, todo: list[tuple[int, dict]],
                   inputs: dict[int, bytes]) -> list[bytes | str | FetchError]:
    """Each item's image bytes, or why there are none (an error string or FetchError)."""
    payloads: list[bytes | str | FetchError] = []
    urls: dict[int, str] = {}
    for position, (i, meta) in enumerate(todo):
        if meta.get("error"):  # rejected when the job was submitted (e.g. a nested archive)
            payloads.append(meta["error"])
        elif meta.get("url"):
            payloads.append("")
            urls[position] = meta["url"]
        elif i in inputs:
            payloads.append(inputs[i])
        else:
            payloads.append("input no longer available (expired or deleted)")
    if urls:
        fetched = fetch_all(list(urls.values()), settings)
        for position, data in zip(urls, fetched, strict=True):
            payloads[position] = data
    return payloads


def fetch_all(urls: list[str], settings: Settings) -> list[bytes | FetchError]:
    def fetch(url: str) -> bytes | FetchError:
        try:
            return fetch_image(client, url, settings.max_image_bytes,
                               settings.fetch_allow_private)
        except FetchError as exc:
            return exc

    with httpx.Client(timeout=settings.fetch_timeout_s, follow_redirects=False) as client, \
            ThreadPoolExecutor(max_workers=min(FETCH_THREADS, len(urls))) as pool:
        return list(pool.map(fetch, urls))
