"""Probes, metrics and docs."""

from __future__ import annotations

import redis
from fastapi.testclient import TestClient

from api.main import create_app
from cli.redis_server import free_port
from core.settings import Settings
from store.workers import heartbeat
from tests.api.conftest import ALICE
from tests.conftest import png_bytes


def test_liveness_and_readiness_follow_worker_heartbeats(client, settings):
    assert client.get("/healthz").json() == {"status": "ok", "redis": None, "workers": None}
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
    heartbeat(redis.Redis.from_url(settings.redis_url), "w1@host")
    assert client.get("/readyz").json() == {"status": "ok", "redis": True, "workers": 1}


def test_an_unreachable_redis_is_503_not_500():
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", api_keys="k:t")
    with TestClient(create_app(settings)) as client:
        response = client.get("/v1/jobs", headers={"X-API-Key": "k"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        assert client.get("/readyz").status_code == 503


def test_metrics_count_requests_items_and_queues(client):
    client.post("/v1/jobs", files=[("files", ("a.png", png_bytes(1)))], headers=ALICE)
    text = client.get("/metrics").text
    assert 'tagger_items_submitted_total{kind="bulk"} 1.0' in text
    assert 'tagger_queue_depth{queue="bulk"} 1.0' in text
    assert 'route="/v1/jobs",status="202"' in text


def test_openapi_documents_the_routes(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/classify", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/results",
            "/v1/jobs/{job_id}/events", "/healthz", "/readyz"} <= set(paths)
