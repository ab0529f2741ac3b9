"""API keys, tenants and the open local mode."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.auth import KeyRing, parse_api_keys
from api.main import create_app
from core.settings import Settings
from tests.api.conftest import ALICE, BOB
from tests.conftest import png_bytes
from worker.names import tenant_webhook_secret


def test_keys_parse_with_tenants_and_the_operator_role():
    ring = KeyRing("k1:alice, k2:ops:operator, k3:old:admin")
    assert ring.tenant_for("k1").name == "alice" and not ring.tenant_for("k1").operator
    assert ring.tenant_for("k2").operator
    assert ring.tenant_for("k3").operator  # `admin`: the deprecated name, still accepted
    assert ring.tenant_for("nope") is None and ring.tenant_for(None) is None


@pytest.mark.parametrize("raw", ["justakey", "k:", ":tenant", "k:t:root", "k:t:admin:x",
                                 "k:t:operator:x"])
def test_malformed_keys_fail_loudly(raw):
    with pytest.raises(ValueError, match="key:tenant"):
        parse_api_keys(raw)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"X-API-Key": "wrong"}, {"Authorization": "Basic xyz"}])
def test_missing_or_invalid_key_is_401(client, headers):
    response = client.get("/v1/jobs", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_both_header_styles_work(client):
    assert client.get("/v1/jobs", headers=ALICE).status_code == 200
    assert client.get("/v1/jobs", headers=BOB).status_code == 200


def test_another_tenants_job_is_not_found(client):
    files = [("files", ("a.png", png_bytes(1), "image/png"))]
    job_id = client.post("/v1/jobs", files=files, headers=ALICE).json()["id"]
    for method, path in [("GET", ""), ("GET", "/results"), ("GET", "/events"),
                         ("GET", "/results?format=csv"), ("DELETE", "")]:
        response = client.request(method, f"/v1/jobs/{job_id}{path}", headers=BOB)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"error": {"code": "not_found", "message": "job not found"}}
    assert client.get("/v1/jobs", headers=BOB).json()["items"] == []
    assert client.get(f"/v1/jobs/{job_id}", headers=ALICE).status_code == 200


def test_no_keys_means_one_open_local_tenant(redis_url, caplog):
    app = create_app(Settings(redis_url=redis_url))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        files = [("files", ("a.png", png_bytes(1), "image/png"))]
        assert client.post("/v1/jobs", files=files).status_code == 202
        assert len(client.get("/v1/jobs").json()["items"]) == 1
    assert "open local tenant" in caplog.text


@pytest.mark.parametrize("host,status", [("localhost:8000", 200), ("127.0.0.1", 200),
                                         ("[::1]:8000", 200), ("evil.example", 400),
                                         ("evil.example:8000", 400)])
def test_an_open_server_answers_only_loopback_host_names(redis_url, host, status):
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 sends
    `Host: evil.example`; an open server must not answer it."""
    with TestClient(create_app(Settings(redis_url=redis_url)),
                    base_url="http://127.0.0.1:8000") as client:
        assert client.get("/v1/jobs", headers={"Host": host}).status_code == status


def test_a_server_with_keys_answers_any_host_name(client):
    assert client.get("/v1/jobs", headers=ALICE | {"Host": "tagger.example"}).status_code == 200



def test_each_tenant_reads_its_own_webhook_secret(client, settings):
    alice = client.get("/v1/webhook-secret", headers=ALICE).json()
    bob = client.get("/v1/webhook-secret", headers=BOB).json()
    assert alice["secret"] == tenant_webhook_secret(settings.webhook_secret, "alice")
    assert alice["secret"].startswith("whsec_") and alice["secret"] != bob["secret"]
    assert alice["headers"] == ["webhook-id", "webhook-timestamp", "webhook-signature"]
    assert client.get("/v1/webhook-secret").status_code == 401
