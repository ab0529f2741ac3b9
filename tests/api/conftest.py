"""API tests: the real app and a real Redis, no worker (tasks wait in their queues)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from cli.redis_server import free_port
from core.settings import Settings

ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"X-API-Key": "bob-key"}


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, api_keys="alice-key:alice,bob-key:bob,ops-key:ops:admin",
                    max_upload_bytes=300_000, max_image_bytes=100_000, max_items_per_job=20,
                    max_image_pixels=1_000_000, max_archive_uncompressed_bytes=400_000,
                    chunk_size=4)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """The app on a real socket (uvicorn in a thread, lifespan on): its base URL. For clients
    that must speak HTTP over a socket, where TestClient will not do."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="api-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
