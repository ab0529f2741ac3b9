"""/v1/models with a real Redis and no worker: list, inspect, activate, download."""

from __future__ import annotations

import pytest
import redis

from api.schemas_training import ARCHITECTURE_NAMES
from core.models import SHIPPED_MODEL_PATH
from store.registry import ModelRegistry
from tests.api.conftest import ALICE

OPS = {"Authorization": "Bearer ops-key"}
SHIPPED = SHIPPED_MODEL_PATH.read_bytes()


@pytest.fixture
def registry(settings) -> ModelRegistry:
    registry = ModelRegistry(redis.Redis.from_url(settings.redis_url))
    registry.register(SHIPPED, "seed:default.safetensors", only_if_empty=True)
    registry.register(SHIPPED, "training-job:abc", onnx=b"onnx-bytes")
    return registry


def test_the_api_knows_every_architecture():
    from core.architectures import ARCHITECTURES

    assert ARCHITECTURE_NAMES == tuple(ARCHITECTURES)


def test_list_and_get_with_metrics_and_the_active_flag(client, registry):
    page = client.get("/v1/models", headers=ALICE).json()
    assert page["active"] == "v1" and [m["version"] for m in page["items"]] == ["v1", "v2"]
    v1 = page["items"][0]
    assert v1["active"] and v1["arch"] == "default" and v1["labels"][9] == "Ankle boot"
    assert v1["metrics"]["train_items"] > 0 and v1["formats"] == ["safetensors"]
    assert v1["source"] == "seed:default.safetensors" and len(v1["weights_sha256"]) == 64
    assert v1["size_bytes"] == len(SHIPPED) and v1["parameters"] > 0
    v2 = client.get("/v1/models/v2", headers=ALICE).json()
    assert not v2["active"] and v2["formats"] == ["safetensors", "onnx"]
    assert client.get("/v1/models/v3", headers=ALICE).status_code == 404


def test_activate_and_roll_back(client, registry):
    response = client.post("/v1/models/v2/activate", headers=OPS)
    assert response.status_code == 200 and response.json()["active"]
    assert client.get("/v1/models", headers=ALICE).json()["active"] == "v2"
    assert client.post("/v1/models/v1/activate", headers=OPS).json()["version"] == "v1"
    assert registry.active() == "v1"
    missing = client.post("/v1/models/v9/activate", headers=OPS)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.post("/v1/models/v2/activate", headers=ALICE).status_code == 403
    assert registry.active() == "v1"


def test_download_both_formats(client, registry):
    response = client.get("/v1/models/v1/download", headers=ALICE)
    assert response.status_code == 200 and response.content == SHIPPED
    assert response.headers["content-disposition"] == (
        'attachment; filename="fashion-tagger-v1.safetensors"')
    assert response.headers["x-weights-sha256"] == registry.get("v1").meta["weights_sha256"]
    onnx = client.get("/v1/models/v2/download?format=onnx", headers=ALICE)
    assert onnx.status_code == 200 and onnx.content == b"onnx-bytes"
    pending = client.get("/v1/models/v1/download?format=onnx", headers=ALICE)
    assert pending.status_code == 409 and pending.headers["retry-after"] == "5"
    assert pending.json()["error"]["code"] == "onnx_pending"
    bad = client.get("/v1/models/v1/download?format=pth", headers=ALICE)
    assert bad.status_code == 422 and "format" in bad.json()["error"]["message"]
