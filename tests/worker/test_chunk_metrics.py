"""A chunk run by the worker code records its numbers in Redis: one batch, its preprocessing
and inference times, its items by outcome, the model that tagged them."""

from __future__ import annotations

import redis

from api.jobwriter import JobWriter
from core.settings import Settings
from store.jobs import JobSpec, JobStore
from store.metrics import read_snapshot
from tests.conftest import png_bytes
from worker import chunks


class NoCelery:
    def send_task(self, *args, **kwargs) -> None:
        pass  # the test runs the chunk itself


def test_a_chunk_records_batch_latency_and_outcomes(redis_url, model_path):
    from core.predictor import Predictor

    predictor = Predictor.from_checkpoint(model_path, device="cpu", backend="torch", threads=1)
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, 600)
    spec = JobSpec(tenant="t", kind="bulk", source="files", queue="bulk", chunk_size=4,
                   model="v1")
    writer = JobWriter(store, NoCelery(), spec)
    job_id = writer.open().job_id
    for i, data in enumerate([png_bytes(1), png_bytes(2), b"not an image"]):
        writer.add({"item_id": None, "filename": f"{i}.png"}, data)
    writer.close()
    chunks.classify_chunks(store, lambda version: predictor, Settings(redis_url=redis_url),
                           [(job_id, 0)])

    snapshot = read_snapshot(client, ["bulk"])
    (batch,) = snapshot.histograms["batch_size"]
    assert batch.label == "bulk" and batch.buckets[-1] == (float("inf"), 1) and batch.sum == 3
    for name in ("preprocess_seconds", "inference_seconds"):
        (sample,) = snapshot.histograms[name]
        assert sample.buckets[-1][1] == 1 and sample.sum > 0
    assert snapshot.items == {("bulk", "ok"): 2, ("bulk", "error"): 1}
    assert list(snapshot.models) == ["v1"]
    assert snapshot.jobs == {"queued": 1, "running": 1, "succeeded": 1}
    assert snapshot.jobs_active == {"queued": 0, "running": 0}
    assert snapshot.queue_depths == {"bulk": 0}
