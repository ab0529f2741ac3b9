"""Classifying chunks of jobs: start them (which fixes each job's model version), read their
inputs, fetch their URLs, run ONE batched `predict_images` call per model version and top_k,
and write every item's result once. A bulk task brings one chunk of one job; an interactive
task brings the one-image chunks of several concurrent jobs. Torch-free: predictors come in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.settings import Settings
from store.jobs import ACTIVE, ChunkInputs, JobStore, StartedChunk
from store.metrics import ChunkStats, record_chunks
from store.results import PredictionLike, error_result, ok_result
from worker.fetch import FetchError, fetch_all
from worker.periodic import Periodic

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # a chunk that killed its worker this often gets per-item errors instead


class PredictorLike(Protocol):
    def predict_images(self, images: list[bytes], top_k: int = 3,
                       max_pixels: int = ...) -> list[Any]: ...


# A model version -> its predictor; raises when it cannot be loaded.
PredictorFor = Callable[[str], PredictorLike]


@dataclass
class OpenChunk:
    """A chunk between reading its inputs and writing its results."""

    job_id: str
    chunk: int
    job: dict[str, str]
    todo: list[tuple[int, dict]]  # (index, metadata) of the items without a result yet
    stats: ChunkStats
    ready: list[tuple[int, dict, bytes]] = field(default_factory=list)  # to classify
    results: dict[int, dict] = field(default_factory=dict)  # by index

    @property
    def version(self) -> str:
        return self.job["model_version"]


def chunk_leases(store: JobStore, refs: Sequence[tuple[str, int]], lease_s: float) -> Periodic:
    """Keeps the leases of the chunks a task works on (store.jobs.start_chunks takes them)
    while the block runs, renewed three times per lease: if this process dies, they lapse and
    the reaper queues the chunks again (store.recovery). A failed renewal lapses nothing
    unless failures go on for a whole lease."""
    return Periodic("chunk-leases", lease_s / 3, lambda: store.renew_leases(refs, lease_s))


def classify_chunks(store: JobStore, predictor_for: PredictorFor, settings: Settings,
                    refs: Sequence[tuple[str, int]],
                    seed_registry: Callable[[], object] = lambda: None,
                    interrupted: bool = False) -> list[dict[str, str]]:
    """Process several chunks, of one job or many (concurrent single-image jobs), with ONE
    predict_images call per model version and top_k, and each store step for all of them in
    one round trip. Returns the records of the jobs these chunks finished.

    Safe to run twice (a redelivered task): items that already have a result are not
    recomputed, and the store writes and counts each item once. `seed_registry` registers a
    first model when a job finds the registry empty (a worker's very first start).
    `interrupted`: this delivery follows one whose worker died (it counts towards giving the
    chunks up).
    """
    with chunk_leases(store, refs, settings.chunk_lease_s):
        opened = open_chunks(store, settings, refs, seed_registry, interrupted)
        groups: dict[tuple[str, str], list[OpenChunk]] = {}
        for c in opened:
            if c.ready:
                groups.setdefault((c.version, c.job["top_k"]), []).append(c)
        for (version, _), group in groups.items():
            classify_ready(group, version, predictor_for, settings)
        results = [[c.results[i] for i, _ in c.todo if i in c.results] for c in opened]
        codes = store.record_many([(c.job_id, c.chunk, r) for c, r in zip(opened, results,
                                                                         strict=True)])
    record_chunks(store.r, [(c.stats, [item["status"] for item in r])
                            for c, r in zip(opened, results, strict=True) if r])
    return [c.job for c, code in zip(opened, codes, strict=True) if code == 1]


def fail_chunks(store: JobStore, refs: Sequence[tuple[str, int]], message: str
                ) -> list[dict[str, str]]:
    """Record every item of these chunks that has no result yet as an error with `message`
    (a task that gives up); returns the records of the jobs that ended."""
    jobs = [(job_id, chunk, store.get_job(job_id)) for job_id, chunk in refs]
    live = [(job_id, chunk, job) for job_id, chunk, job in jobs if job]
    inputs = store.chunks_inputs([(job_id, chunk, int(job["chunk_size"]))
                                  for job_id, chunk, job in live])
    records = []
    for (job_id, chunk, job), read in zip(live, inputs, strict=True):
        start = chunk * int(job["chunk_size"])
        version = job["model_version"] or None
        records.append((job_id, chunk, [
            error_result(start + i, meta, message, version)
            for i, (meta, done) in enumerate(zip(read.metas, read.written, strict=True))
            if done is None]))
    codes = store.record_many(records)
    return [job for (_, _, job), code in zip(live, codes, strict=True) if code == 1]


def open_chunks(store: JobStore, settings: Settings, refs: Sequence[tuple[str, int]],
                seed_registry: Callable[[], object], interrupted: bool) -> list[OpenChunk]:
    """Start the chunks and read them: the items to classify (URLs fetched) and the results
    already decided (given up, unreadable). Chunks of gone jobs drop."""
    lease_s = settings.chunk_lease_s
    started = store.start_chunks(refs, lease_s, interrupted)
    if any(s.job and not s.attempt for s in started):  # no model registered yet
        seed_registry()
        again = [i for i, s in enumerate(started) if s.job and not s.attempt]
        for i, s in zip(again, store.start_chunks([refs[i] for i in again], lease_s,
                                                  interrupted), strict=True):
            started[i] = s
    live: list[tuple[str, int, StartedChunk]] = []
    for (job_id, chunk), s in zip(refs, started, strict=True):
        if s.job:
            live.append((job_id, chunk, s))
        else:
            log.info("job %s is gone (expired or discarded); dropping chunk %s", job_id, chunk)
    inputs = store.chunks_inputs([(job_id, chunk, int(s.job["chunk_size"]))
                                  for job_id, chunk, s in live])
    return [_open(settings, job_id, chunk, s, read)
            for (job_id, chunk, s), read in zip(live, inputs, strict=True)]


def _open(settings: Settings, job_id: str, chunk: int, started: StartedChunk,
          read: ChunkInputs) -> OpenChunk:
    job, attempt = started.job, started.attempt
    start = chunk * int(job["chunk_size"])
    todo = [(start + i, meta) for i, (meta, done) in enumerate(zip(read.metas, read.written,
                                                                   strict=True))
            if done is None]
    opened = OpenChunk(job_id, chunk, job, todo, ChunkStats(job["queue"]))
    version = job["model_version"] or None
    if job["status"] not in ACTIVE:
        pass  # it ended (cancelled, past its deadline): its unprocessed items are skipped
    elif not attempt:
        message = "no model is registered, and none could be seeded"
        opened.results = {i: error_result(i, meta, message, None) for i, meta in todo}
    elif attempt > MAX_ATTEMPTS:
        message = f"gave up: a worker died {attempt - 1} times while processing this item's batch"
        opened.results = {i: error_result(i, meta, message, version) for i, meta in todo}
    else:
        for (i, meta), data in zip(todo, _gather_inputs(settings, todo, read.images),
                                   strict=True):
            if isinstance(data, bytes):
                opened.ready.append((i, meta, data))
            else:
                opened.results[i] = error_result(i, meta, str(data), version)
    return opened


def classify_ready(group: list[OpenChunk], version: str, predictor_for: PredictorFor,
                   settings: Settings) -> None:
    """One predict_images call for the ready items of chunks that share a model version and
    top_k; its batch size and timings go to the first chunk's metrics."""
    first = group[0]
    images = [data for c in group for _, _, data in c.ready]
    failure = "internal error while classifying"
    try:
        predictor = predictor_for(version)
    except Exception as exc:  # a corrupt or incompatible model: end the items with why
        log.exception("cannot load model %s", version)
        predictor, failure = None, f"the worker cannot load model {version}: {exc}"
    predictions: list[Any] = [None] * len(images)
    if predictor is not None:
        try:
            predictions = _predict(predictor, images, int(first.job["top_k"]),
                                   settings.max_image_pixels, first.stats, version)
        except Exception:  # a bug, not bad input: report it per item rather than hang the job
            log.exception("predict_images failed for job(s) %s",
                          ", ".join(c.job_id for c in group))
    remaining = iter(predictions)
    # Without a threshold of its own, a job flags what the model's calibration says needs a
    # look (its `review_below`, chosen on validation).
    default_threshold = getattr(predictor, "review_below", None)
    for c in group:
        threshold = (float(c.job["review_threshold"]) if c.job["review_threshold"]
                     else default_threshold)
        for i, meta, _ in c.ready:
            c.results[i] = _result(i, meta, next(remaining), threshold, version, failure)


def _predict(predictor: PredictorLike, images: list[bytes], top_k: int, max_pixels: int,
             stats: ChunkStats, version: str) -> list[Any]:
    """One predict_images call, measured: per stage where the predictor can tell
    (core.predictor.Predictor.predict_images_timed), else the whole call as inference."""
    stats.batch_size, stats.model_version = len(images), version
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
            version: str, failure: str) -> dict:
    if pred is None:
        return error_result(index, meta, failure, version)
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
        fetched = fetch_all(list(urls.values()), settings.max_image_bytes,
                            settings.fetch_allow_private, settings.fetch_timeout_s,
                            settings.fetch_deadline_s)
        for position, data in zip(urls, fetched, strict=True):
            payloads[position] = data
    return payloads
