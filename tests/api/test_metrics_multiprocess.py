"""GET /metrics with two uvicorn worker processes (as docker-compose.yml runs the API): with
PROMETHEUS_MULTIPROC_DIR every scrape, whichever process answers it, sums both processes'
request and item counters, so they add up and never go backwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli.redis_server import free_port
from tests.conftest import png_bytes

REPO = Path(__file__).resolve().parents[2]
KEY = {"Authorization": "Bearer alice-key"}


@pytest.fixture
def two_process_api(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port, shared = free_port(), tmp_path / "prometheus"
    shared.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGGER_")} | {
        "TAGGER_REDIS_URL": redis_url, "TAGGER_API_KEYS": "alice-key:alice",
        "TAGGER_LOG_FORMAT": "text", "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    log = (tmp_path / "uvicorn.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "2", "--log-level", "warning"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "uvicorn.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "uvicorn.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield base, shared
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def scrape(base: str) -> dict[str, float]:
    """Each sample name summed over its labels (of the label values we filter on)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name
            if sample.name == "tagger_http_request_seconds_count":
                key = f"{sample.name}{{{sample.labels['route']}}}"
            totals[key] = totals.get(key, 0) + sample.value
    return totals


def pids_with_requests(shared: Path) -> set[str]:
    """Processes that have recorded a request: prometheus_client writes histogram_<pid>.db."""
    return {p.stem.rpartition("_")[2] for p in shared.glob("histogram_*.db")}


def test_counters_from_both_processes_add_up_and_never_go_back(two_process_api):
    base, shared = two_process_api
    sent = 1  # the readiness probe above
    # New connections each time: the kernel hands them to either process.
    deadline = time.monotonic() + 60
    while len(pids_with_requests(shared)) < 2 or sent < 20:
        assert time.monotonic() < deadline, "one process served every request"
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        sent += 1
    items = 0
    for i in range(6):
        files = [("files", (f"{i}-{n}.png", png_bytes(i + n))) for n in range(i % 3 + 1)]
        response = httpx.post(f"{base}/v1/jobs", files=files, headers=KEY, timeout=10)
        assert response.status_code == 202, response.text
        items += len(files)

    healthz, seen = "tagger_http_request_seconds_count{/healthz}", []
    deadline = time.monotonic() + 10
    while True:  # a request's observation lands just after its answer: wait for the last one
        samples = scrape(base)
        seen.append(samples)
        if samples.get(healthz) == sent and samples.get("tagger_items_submitted_total") == items:
            break
        assert time.monotonic() < deadline, (samples.get(healthz), sent, items)
    for _ in range(5):  # more scrapes, answered by either process
        seen.append(scrape(base))

    for name in (healthz, "tagger_items_submitted_total", "tagger_http_request_seconds_count"
                 "{/metrics}", "tagger_http_request_seconds_count{/v1/jobs}"):
        series = [s.get(name, 0) for s in seen]
        assert series == sorted(series), f"{name} went backwards: {series}"
    last = seen[-1]
    assert last[healthz] == sent
    assert last["tagger_items_submitted_total"] == items
    assert last["tagger_http_request_seconds_count{/v1/jobs}"] == 6
    # Every scrape but the newest (and maybe the one before: its observation may still be on
    # its way) has been counted, by whichever process answered it.
    assert last["tagger_http_request_seconds_count{/metrics}"] >= len(seen) - 2
    assert len(pids_with_requests(shared)) == 2
