"""Classifying chunks of jobs: read their inputs, fetch their URLs, run ONE batched
`predict_images` call per model, write every item's result once. A bulk task brings one chunk
of one job; an interactive task brings the one-image chunks of several concurrent jobs.
Torch-free: the predictors come in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from core.settings import Settings
from worker.fetch import FetchError, fetch_image
from worker.jobstore import JobStore
from worker.metrics import ChunkStats, record_chunks
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


@dataclass
class OpenChunk:
    """A chunk between reading its inputs and writing its results."""

    job_id: str
    chunk: int
    job: dict[str, str]
    predictor: PredictorLike
    todo: list[tuple[int, dict]]  # (index, metadata) of the items without a result yet
    stats: ChunkStats
    ready: list[tuple[int, dict, bytes]] = field(default_factory=list)  # to classify
    results: dict[int, dict] = field(default_factory=dict)  # by index


def classify_chunk(store: JobStore, predictor: PredictorLike, settings: Settings,
                   job_id: str, chunk: int) -> dict[str, str] | None:
    """Process chunk `chunk` of `job_id`. Returns the job record when this call finished the
    job (the caller then sends its webhook), else None.

    Safe to run twice (a redelivered task): items that already have a result are not
    recomputed, and the store writes and counts each item once.
    """
    finished = classify_chunks(store, lambda ids: [predictor] * len(ids), settings,
                               [(job_id, chunk)])
    return finished[0] if finished else None


PredictorsFor = Callable[[list[str]], list[PredictorLike]]


def classify_chunks(store: JobStore, predictors_for: PredictorsFor, settings: Settings,
                    refs: Sequence[tuple[str, int]]) -> list[dict[str, str]]:
    """Process several chunks, of one job or many (concurrent single-image jobs), with ONE
    predict_images call per model and top_k, and each store step for all of them in one
    round trip. `predictors_for(job_ids)` fixes each job's model version. Returns the records
    of the jobs these chunks finished. Each chunk has classify_chunk's guarantees.
    """
    opened = open_chunks(store, predictors_for, settings, refs)
    groups: dict[tuple[int, str], list[OpenChunk]] = {}
    for c in opened:
        if c.ready:
            groups.setdefault((id(c.predictor), c.job["top_k"]), []).append(c)
    for group in groups.values():
        classify_ready(group, settings)
    results = [[c.results[i] for i, _ in c.todo] for c in opened]
    codes = store.record_many([(c.job_id, c.chunk, r) for c, r in zip(opened, results,
                                                                     strict=True)])
    record_chunks(store.r, [(c.stats, [item["status"] for item in r])
                            for c, r in zip(opened, results, strict=True)])
    return [c.job for c, code in zip(opened, codes, strict=True) if code == 1]


def open_chunks(store: JobStore, predictors_for: PredictorsFor, settings: Settings,
                refs: Sequence[tuple[str, int]]) -> list[OpenChunk]:
    """Mark the jobs running and read the chunks: the items to classify (URLs fetched) and
    the results already decided (skipped, given up, unreadable). Chunks of gone jobs drop."""
    predictors = predictors_for([job_id for job_id, _ in refs])
    started = store.start_chunks([(job_id, chunk, predictor.version) for (job_id, chunk),
                                  predictor in zip(refs, predictors, strict=True)])
    live = []
    for (job_id, chunk), predictor, (job, attempt) in zip(refs, predictors, started,
                                                          strict=True):
        if job:
            live.append((job_id, chunk, predictor, job, attempt))
        else:
            log.info("job %s is gone (expired or discarded); dropping chunk %s", job_id, chunk)
    inputs = store.chunks_inputs([(job_id, chunk, int(job["chunk_size"]))
                                  for job_id, chunk, _, job, _ in live])
    return [_open(settings, *chunk, *read) for chunk, read in zip(live, inputs, strict=True)]


def _open(settings: Settings, job_id: str, chunk: int, predictor: PredictorLike,
          job: dict[str, str], attempt: int, metas: list[dict], written: list[bytes | None],
          inputs: dict[int, bytes]) -> OpenChunk:
    start = chunk * int(job["chunk_size"])
    todo = [(start + i, meta) for i, (meta, done) in enumerate(zip(metas, written, strict=True))
            if done is None]
    opened = OpenChunk(job_id, chunk, job, predictor, todo, ChunkStats(job["queue"]))
    if job["status"] == "cancelled":
        opened.results = {i: skipped_result(i, meta) for i, meta in todo}
    elif attempt > MAX_ATTEMPTS:
        message = f"gave up: a worker died {attempt - 1} times while processing this item's batch"
        opened.results = {i: error_result(i, meta, message, None) for i, meta in todo}
    else:
        for (i, meta), data in zip(todo, _gather_inputs(settings, todo, inputs), strict=True):
            if isinstance(data, bytes):
                opened.ready.append((i, meta, data))
            else:
                opened.results[i] = error_result(i, meta, str(data), predictor.version)
    return opened


def classify_ready(group: list[OpenChunk], settings: Settings) -> None:
    """One predict_images call for the ready items of chunks that share a model and top_k;
    its batch size and timings go to the first chunk's metrics."""
    first = group[0]
    images = [data for c in group for _, _, data in c.ready]
    try:
        predictions = _predict(first.predictor, images, int(first.job["top_k"]),
                               settings.max_image_pixels, first.stats)
    except Exception:  # a bug, not bad input: report it per item rather than hang the job
        log.exception("predict_images failed for job(s) %s", ", ".join(c.job_id for c in group))
        predictions = [None] * len(images)
    remaining = iter(predictions)
    for c in group:
        threshold = float(c.job["review_threshold"]) if c.job["review_threshold"] else None
        for i, meta, _ in c.ready:
            c.results[i] = _result(i, meta, next(remaining), threshold, c.predictor.version)


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
