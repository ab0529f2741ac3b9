"""GET /metrics: jobs by state, worker-side measurements aggregated through Redis, and the
JSON access log line carrying the job id."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from cli.redis_server import free_port
from core.logs import JsonFormatter, job_context
from core.settings import Settings
from store.metrics import ChunkStats, record_chunk
from tests.api.conftest import ALICE
from tests.conftest import png_bytes

Samples = dict[tuple[str, frozenset], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_jobs_by_state_follow_submission_and_cancellation(client):
    before = scrape(client)
    assert value(before, "tagger_jobs_entered_total", state="queued") == 0
    assert value(before, "tagger_jobs_active", state="queued") == 0
    files = [("files", (f"{i}.png", png_bytes(i))) for i in range(2)]
    job_id = client.post("/v1/jobs", files=files, headers=ALICE).json()["id"]
    queued = scrape(client)
    assert value(queued, "tagger_jobs_entered_total", state="queued") == 1
    assert value(queued, "tagger_jobs_active", state="queued") == 1
    assert client.delete(f"/v1/jobs/{job_id}", headers=ALICE).status_code == 200
    cancelled = scrape(client)
    assert value(cancelled, "tagger_jobs_entered_total", state="cancelled") == 1
    assert value(cancelled, "tagger_jobs_active", state="queued") == 0
    assert value(cancelled, "tagger_jobs_active", state="running") == 0


def test_worker_measurements_become_histograms_and_counters(client, settings):
    r = redis.Redis.from_url(settings.redis_url)
    stats = ChunkStats(queue="bulk", model_version="v-abc", batch_size=5, preprocess_s=0.02,
                       inference_s=0.004)
    for _ in range(2):
        record_chunk(r, stats, ["ok"] * 4 + ["error"])
    samples = scrape(client)
    assert value(samples, "tagger_batch_size_bucket", queue="bulk", le="4.0") == 0
    assert value(samples, "tagger_batch_size_bucket", queue="bulk", le="8.0") == 2
    assert value(samples, "tagger_batch_size_bucket", queue="bulk", le="+Inf") == 2
    assert value(samples, "tagger_batch_size_count", queue="bulk") == 2
    assert value(samples, "tagger_batch_size_sum", queue="bulk") == 10
    assert value(samples, "tagger_preprocess_seconds_bucket", queue="bulk", le="0.025") == 2
    assert value(samples, "tagger_inference_seconds_bucket", queue="bulk", le="0.0025") == 0
    assert value(samples, "tagger_inference_seconds_bucket", queue="bulk", le="0.005") == 2
    assert value(samples, "tagger_items_processed_total", queue="bulk", status="ok") == 8
    assert value(samples, "tagger_items_processed_total", queue="bulk", status="error") == 2
    assert value(samples, "tagger_active_model_info", version="v-abc") == 1
    assert value(samples, "tagger_redis_up") == 1


def test_metrics_answer_while_redis_is_down():
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", api_keys="k:t")
    with TestClient(create_app(settings)) as client:
        samples = scrape(client)
    assert value(samples, "tagger_redis_up") == 0


def test_the_access_log_is_a_json_line_with_the_job_id(client):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("api.access")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        client.get("/v1/jobs/0123456789abcdef0123456789abcdef?x=secret", headers=ALICE)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["job_id"] == "0123456789abcdef0123456789abcdef"
    assert (line["route"], line["status"], line["method"]) == ("/v1/jobs/{job_id}", 404, "GET")
    assert "secret" not in stream.getvalue()  # query strings are never logged
    assert line["level"] == "info" and line["duration_ms"] >= 0


def test_json_lines_carry_the_context_job_extra_fields_and_tracebacks():
    record = logging.LogRecord("worker.chunks", logging.ERROR, __file__, 1, "chunk %s failed",
                               (3,), None)
    record.chunk = 3
    with job_context("job-1"):
        line = json.loads(JsonFormatter().format(record))
    assert line["job_id"] == "job-1" and line["message"] == "chunk 3 failed"
    assert line["chunk"] == 3 and line["level"] == "error"
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exc_info"]
    assert "job_id" not in json.loads(JsonFormatter().format(record))  # context left


def test_a_serving_process_logs_json_but_a_configured_one_is_left_alone():
    code = """if True:
        import logging, sys
        from core.logs import configure_json_logging, job_context
        if sys.argv[1] == "configured":
            logging.basicConfig(format="plain %(message)s")
        configure_json_logging()
        with job_context("job-9"):
            logging.getLogger("api").info("hello", extra={"chunk": 2})
    """
    for mode in ("fresh", "configured"):
        done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        lines = done.stderr.strip().splitlines()
        if mode == "fresh":
            assert json.loads(lines[-1]) | {"ts": "t"} == {
                "ts": "t", "level": "info", "logger": "api", "message": "hello",
                "job_id": "job-9", "chunk": 2}
        else:
            assert lines == []  # basicConfig's level (WARNING) stays: our INFO is not shown
