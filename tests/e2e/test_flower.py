"""Flower (the Celery dashboard that docker-compose runs) starts on our Celery app and
inspects the live stack's worker: its queues and our registered tasks."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
import redis

from cli.redis_server import free_port
from cli.stack import DEFAULT_QUEUES
from store.keys import WORKERS_KEY
from worker import names

pytest.importorskip("flower", reason="flower is not installed (pip install -e '.[dev]')")


def test_flower_inspects_our_worker(live_stack, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGGER_")} | {
        "TAGGER_REDIS_URL": live_stack.redis_url,
        # Flower's JSON API is off without auth unless asked for: this one is on loopback.
        "FLOWER_UNAUTHENTICATED_API": "true"}
    with (tmp_path / "flower.log").open("wb") as log:
        flower = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.app", "flower",
             f"--port={port}", "--address=127.0.0.1"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        workers: dict = {}
        while not workers:
            assert flower.poll() is None, (tmp_path / "flower.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "flower.log").read_text()
            try:
                if httpx.get(f"{base}/healthcheck", timeout=2).text == "OK":
                    workers = httpx.get(f"{base}/api/workers", params={"refresh": "true"},
                                        timeout=20).json()
            except httpx.TransportError:
                pass
            time.sleep(0.5)
    finally:
        flower.terminate()
        flower.wait(30)
    (hostname,) = [name.decode() for name in
                   redis.Redis.from_url(live_stack.redis_url).zrange(WORKERS_KEY, 0, -1)]
    info = workers[hostname]  # the live stack's worker, as flower inspected it
    assert {q["name"] for q in info["active_queues"]} == set(DEFAULT_QUEUES.split(","))
    assert {names.CLASSIFY_CHUNK, names.SEND_WEBHOOK} <= set(info["registered"])
