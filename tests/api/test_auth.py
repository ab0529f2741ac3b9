"""API keys, tenants and the open local mode."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.auth import KeyRing, parse_api_keys
from api.main import create_app
from core.settings import Settings
from tests.api.conftest import ALICE, BOB
from tests.conftest import png_bytes


def test_keys_parse_with_tenants_and_admin_flag():
    ring = KeyRing("k1:alice, k2:ops:admin")
    assert ring.tenant_for("k1").name == "alice" and not ring.tenant_for("k1").admin
    assert ring.tenant_for("k2").admin
    assert ring.tenant_for("nope") is None and ring.tenant_for(None) is None


@pytest.mark.parametrize("raw", ["justakey", "k:", ":tenant", "k:t:root", "k:t:admin:x"])
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
    with TestClient(create_app(Settings(redis_url=redis_url))) as client:
        files = [("files", ("a.png", png_bytes(1), "image/png"))]
        assert client.post("/v1/jobs", files=files).status_code == 202
        assert len(client.get("/v1/jobs").json()["items"]) == 1
    assert "open local tenant" in caplog.text

