"""API tests: the real app and a real Redis, no worker (tasks wait in their queues)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
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
