"""The whole service as a user meets it: a Redis server of its own, a real Celery worker
process and the API served by a real uvicorn process on a free port. For clients that speak
HTTP over a socket (the browser, the CLI client), where the in-process TestClient of tests/e2e
will not do.

A pytest plugin (tests/conftest.py lists it), so tests/cli and tests/e2e share one stack. The
worker serves the shipped model, so pages and screenshots show meaningful tags; tests compare
with the offline Predictor on the same checkpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.redis_server import EmbeddedRedis, free_port
from core.models import SHIPPED_MODEL_PATH
from tests.e2e.conftest import SECRET, start_worker, stop

KEYS = "alice-key:alice,bob-key:bob,ops-key:ops:admin"


@dataclass(frozen=True)
class LiveStack:
    url: str  # http://127.0.0.1:<port>
    redis_url: str
    model_path: Path
    log_dir: Path


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}/readyz did not answer 200 in {timeout_s} s")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    log_dir = tmp_path_factory.mktemp("live-stack")
    # Its own Redis server: nothing else (another test session on this machine included)
    # shares its queues, its broadcast channels or its model registry.
    with EmbeddedRedis(log_dir / "redis") as server:
        redis_url = server.url
        worker = start_worker(redis_url, SHIPPED_MODEL_PATH, log_dir, allow_private=False)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAGGER_")} | {
            "TAGGER_REDIS_URL": redis_url, "TAGGER_API_KEYS": KEYS, "TAGGER_CHUNK_SIZE": "8",
            "TAGGER_WEBHOOK_SECRET": SECRET, "TAGGER_DATA_DIR": str(log_dir)}
        with (log_dir / "api.log").open("wb") as log:
            api = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                 "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, api)
            yield LiveStack(url, redis_url, SHIPPED_MODEL_PATH, log_dir)
        finally:
            stop(api)
            stop(worker)


@pytest.fixture(scope="session")
def shipped_predictor():
    """The offline Predictor on the checkpoint the live stack's worker serves."""
    from core.predictor import Predictor

    return Predictor.from_checkpoint(SHIPPED_MODEL_PATH, device="cpu", backend="torch", threads=1)
