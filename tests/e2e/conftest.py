"""End-to-end fixtures: real Celery worker processes (started once per session) on a real
Redis, and the real API app in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from cli.stack import DEFAULT_QUEUES
from core.settings import Settings
from store.keys import WORKERS_KEY
from tests.conftest import E2E_DB, E2E_PRIVATE_BLOCKED_DB

SECRET = "e2e-webhook-secret"
KEYS = "alice-key:alice,bob-key:bob"
ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}
TERMINAL = ("succeeded", "failed", "cancelled")


def start_worker(url: str, model_path: Path, data_dir: Path, allow_private: bool,
                 env: dict[str, str] | None = None, own_session: bool = False
                 ) -> subprocess.Popen:
    """A real Celery worker (prefork, one child). `own_session`: in a process group of its
    own, so a test can kill it whole (parent and children) as an OOM kill would."""
    hostname = f"e2e-{uuid.uuid4().hex[:8]}@test"
    env = {**os.environ, "TAGGER_REDIS_URL": url, "TAGGER_MODEL_PATH": str(model_path),
           "TAGGER_DATA_DIR": str(data_dir), "TAGGER_WEBHOOK_SECRET": SECRET,
           "TAGGER_FETCH_ALLOW_PRIVATE": "1" if allow_private else "0",
           "TAGGER_TORCH_THREADS": "1", **(env or {})}
    log = open(data_dir / f"{hostname}.log", "wb")  # closed when the test process exits
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", DEFAULT_QUEUES,
         "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO", "-n", hostname,
         "--without-gossip", "--without-mingle"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=own_session)
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 120
    while client.zscore(WORKERS_KEY, hostname) is None:  # the worker's first heartbeat
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"worker did not start: {(data_dir / f'{hostname}.log')}")
        time.sleep(0.2)
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def worker_and_api(redis_base: str, db: int, model_path: Path, tmp: Path,
                   allow_private: bool) -> Iterator[TestClient]:
    url = f"{redis_base}/{db}"
    redis.Redis.from_url(url).flushdb()
    worker = start_worker(url, model_path, tmp, allow_private)
    settings = Settings(redis_url=url, api_keys=KEYS, chunk_size=8, webhook_secret=SECRET)
    try:
        with TestClient(create_app(settings)) as client:
            yield client
    finally:
        stop(worker)


@pytest.fixture(scope="session")
def api(redis_base, model_path, tmp_path_factory) -> Iterator[TestClient]:
    """The API with a worker that may fetch from private addresses (the local test server)."""
    yield from worker_and_api(redis_base, E2E_DB, model_path,
                              tmp_path_factory.mktemp("worker"), allow_private=True)


@pytest.fixture(scope="module")
def api_default_fetch(redis_base, model_path, tmp_path_factory) -> Iterator[TestClient]:
    """The API with a worker on default settings: private addresses refused."""
    yield from worker_and_api(redis_base, E2E_PRIVATE_BLOCKED_DB, model_path,
                              tmp_path_factory.mktemp("worker-ssrf"), allow_private=False)


@pytest.fixture(scope="session")
def offline(model_path):
    """The offline Predictor on the same checkpoint: the service must agree with it."""
    from core.predictor import Predictor

    return Predictor.from_checkpoint(model_path, device="cpu", backend="torch", threads=1)


def wait_done(client: TestClient, job_id: str, headers=ALICE, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.1)


def all_results(client: TestClient, job_id: str, headers=ALICE) -> list[dict]:
    response = client.get(f"/v1/jobs/{job_id}/results?format=jsonl", headers=headers)
    return [json.loads(line) for line in response.text.splitlines()]
