"""The model registry with a real Redis: seeding, immutable versions, activation, job pinning."""

from __future__ import annotations

import threading

import pytest
import redis

from core.models import SHIPPED_MODEL_PATH
from store.registry import (
    METADATA_KEY,
    ModelRecord,
    ModelRegistry,
    RegistryError,
    activation_decision,
    checkpoint_metadata,
)

SHIPPED = SHIPPED_MODEL_PATH.read_bytes()


@pytest.fixture
def registry(redis_url: str) -> ModelRegistry:
    return ModelRegistry(redis.Redis.from_url(redis_url))


def test_the_torch_free_header_reader_agrees_with_core():
    from core.checkpoint import METADATA_KEY as CORE_KEY
    from core.checkpoint import ModelMeta, read_meta

    assert METADATA_KEY == CORE_KEY
    assert ModelMeta.model_validate(checkpoint_metadata(SHIPPED)) == read_meta(SHIPPED)
    for bad in (b"", b"\xff" * 8 + b"{}", SHIPPED[:100], b"\x02\x00\x00\x00\x00\x00\x00\x00{}"):
        with pytest.raises(RegistryError):
            checkpoint_metadata(bad)


def test_seeding_is_idempotent_and_race_free(registry: ModelRegistry):
    results: list[str | None] = []

    def seed() -> None:
        results.append(ModelRegistry(registry.r).register(SHIPPED, "seed", only_if_empty=True))

    threads = [threading.Thread(target=seed) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("v1") == 1 and results.count(None) == 7
    assert registry.active() == "v1"
    assert [r.version for r in registry.list_versions()] == ["v1"]
    assert registry.register(SHIPPED, "seed", only_if_empty=True) is None


def test_versions_are_immutable_and_activation_switches(registry: ModelRegistry):
    assert registry.register(SHIPPED, "seed", only_if_empty=True) == "v1"
    v2 = registry.register(SHIPPED, "training-job:abc", onnx=b"onnx-v2")
    assert v2 == "v2" and registry.active() == "v1"  # registering never activates by itself
    first = registry.get("v1")
    assert isinstance(first, ModelRecord) and first.source == "seed" and not first.has_onnx
    assert first.labels[7] == "Sneaker" and first.meta["metrics"]["train_items"] > 0
    assert registry.checkpoint("v1") == SHIPPED and first.size_bytes == len(SHIPPED)
    assert registry.put_onnx("v1", b"first") and not registry.put_onnx("v1", b"second")
    assert registry.onnx("v1") == b"first" and registry.onnx("v2") == b"onnx-v2"
    assert registry.activate("v2") and registry.active() == "v2"
    assert registry.activate("v1") and registry.active() == "v1"  # rollback
    assert registry.get("v1").registered_at == first.registered_at


@pytest.mark.parametrize("name", ["v9", "v0", "x1", "v1:safetensors", "", "V1", "v1 "])
def test_unknown_or_malformed_versions(registry: ModelRegistry, name: str):
    registry.register(SHIPPED, "seed", only_if_empty=True)
    assert not registry.activate(name) and registry.active() == "v1"
    assert registry.get(name) is None and not registry.exists(name)
    assert registry.checkpoint(name) is None


def record(version: str, labels: list[str], accuracy: float | None) -> ModelRecord:
    meta = {"arch": "default", "labels": labels, "metrics": {}}
    if accuracy is not None:
        meta["metrics"]["val_accuracy"] = accuracy
    return ModelRecord(version, "t", "s", 1, meta, False)


def test_activation_policies():
    old = record("v1", ["a", "b"], 0.90)
    assert activation_decision("never", record("v2", ["a", "b"], 0.99), old)[0] is False
    assert activation_decision("always", record("v2", ["a", "b"], 0.10), old)[0] is True
    assert activation_decision("if_better", record("v2", ["a", "b"], 0.91), old)[0] is True
    better, why = activation_decision("if_better", record("v2", ["a", "b"], 0.90), old)
    assert not better and "does not beat" in why
    better, why = activation_decision("if_better", record("v2", ["x", "y"], 0.99), old)
    assert not better and "labels differ" in why
    assert activation_decision("if_better", record("v2", ["a", "b"], 0.5), None)[0] is True
