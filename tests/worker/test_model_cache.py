"""A worker's per-process model cache: versions downloaded from the registry (Redis only, no
shared disk), the ONNX export shared through it, LRU eviction, and the same answers as the
offline predictor on the same checkpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from core.models import SHIPPED_MODEL_PATH
from core.settings import Settings
from store.registry import ModelRegistry
from tests.conftest import png_bytes

SHIPPED = SHIPPED_MODEL_PATH.read_bytes()
PHOTOS = Path(__file__).resolve().parent.parent / "fixtures" / "photos"


@pytest.fixture
def registry(redis_url: str) -> ModelRegistry:
    registry = ModelRegistry(redis.Redis.from_url(redis_url))
    registry.register(SHIPPED, "seed", only_if_empty=True)
    return registry


@pytest.fixture(scope="module")
def offline():
    from core.predictor import Predictor

    return Predictor.from_checkpoint(SHIPPED_MODEL_PATH, device="cpu", backend="torch",
                                     threads=1)


def cache(registry: ModelRegistry, tmp_path, capacity: int = 3, backend: str = "auto"):
    from worker.model import ModelCache

    settings = Settings(data_dir=tmp_path, device="cpu", inference_backend=backend)
    return ModelCache(registry, settings, threads=1, capacity=capacity)


def test_a_version_is_downloaded_served_and_its_onnx_shared(registry, tmp_path, offline):
    first = cache(registry, tmp_path / "machine-a")
    predictor = first.get("v1")
    assert predictor.version == "v1" and predictor.backend == "onnx"
    assert (tmp_path / "machine-a" / "models" / "v1.safetensors").read_bytes() == SHIPPED
    onnx = registry.onnx("v1")  # the seeded version got its export from this first load
    assert onnx and registry.get("v1").has_onnx
    images = [png_bytes(i) for i in range(8)]
    expected = offline.predict_images(images)
    served = predictor.predict_images(images)
    assert [p.label for p in served] == [p.label for p in expected]
    # Another machine: takes the export from the registry instead of exporting again.
    second = cache(registry, tmp_path / "machine-b").get("v1")
    digest = registry.get("v1").meta["weights_sha256"]
    assert (tmp_path / "machine-b" / "cache" / "onnx" / f"{digest}.onnx").read_bytes() == onnx
    assert [p.label for p in second.predict_images(images)] == [p.label for p in expected]


def test_lru_eviction_and_a_stale_local_file(registry, tmp_path):
    registry.register(SHIPPED, "again")  # v2: same weights, another version
    models = cache(registry, tmp_path, capacity=1, backend="torch")  # reads checkpoints
    stale = tmp_path / "models" / "v2.safetensors"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over from another Redis")
    one, two = models.get("v1"), models.get("v2")
    assert (one.version, two.version) == ("v1", "v2") and stale.read_bytes() == SHIPPED
    assert models.get("v2") is two and models.get("v1") is not one  # v1 was evicted
    from worker.model import UnknownModel

    with pytest.raises(UnknownModel):
        models.get("v9")


def test_the_shipped_pair_is_seeded_and_served_as_the_offline_pair_serves_it(redis_url,
                                                                            tmp_path):
    """What a new deployment serves: v1 the Fashion-MNIST model, v2 the photo model routing
    to it (active), both with their shipped ONNX exports; the same answers, bit for bit, as
    `fashion-tagger predict` (core.routing.serving_predictor) on the same bytes."""
    from core.routing import RoutedPredictor, serving_predictor
    from worker.tasks import seed_registry

    registry = ModelRegistry(redis.Redis.from_url(redis_url))
    assert seed_registry(registry, Settings()) == "v2"
    assert [r.version for r in registry.list_versions()] == ["v1", "v2"]
    assert registry.active() == "v2" and all(r.has_onnx for r in registry.list_versions())
    assert seed_registry(registry, Settings()) is None  # seeded once
    served = cache(registry, tmp_path, backend="onnx").get("v2")
    assert isinstance(served, RoutedPredictor) and served.version == "v2"
    offline = serving_predictor(device="cpu", backend="onnx", threads=1)
    images = [png_bytes(i) for i in range(20)] + [
        p.read_bytes() for p in sorted(PHOTOS.glob("*.jpg"))]
    got, expected = served.predict_images(images), offline.predict_images(images)
    assert got == expected
    assert {p.route for p in got} == {"fashion-mnist", "photo"}


def test_the_onnx_backend_serves_without_importing_torch(redis_url, tmp_path):
    """The lean CPU worker: a seeded pair loaded and used in a process that never imports
    torch."""
    code = f"""
import sys, redis
from core.settings import Settings
from store.registry import ModelRegistry
from worker.model import ModelCache
from worker.tasks import seed_registry
registry = ModelRegistry(redis.Redis.from_url({redis_url!r}))
seed_registry(registry, Settings())
served = ModelCache(registry, Settings(data_dir={str(tmp_path)!r}, inference_backend="onnx"),
                    threads=1).get("v2")
from tests.conftest import png_bytes
assert served.predict_images([png_bytes(1)])[0].label
sys.exit(1 if "torch" in sys.modules else 0)
"""
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
