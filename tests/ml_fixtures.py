"""ML fixtures for tests/core and tests/cli: real Fashion-MNIST slices, a tiny trained model."""

from pathlib import Path

import pytest

from core.data import ImageSet, limit, load_fashion_mnist
from core.recipes import TrainConfig
from core.runs import run_training
from core.settings import get_settings


@pytest.fixture(scope="session")
def fmnist_dir() -> Path:
    return get_settings().fashion_mnist_dir


@pytest.fixture(scope="session")
def fmnist_test(fmnist_dir) -> ImageSet:
    """The official test split: used here only to check preprocessing/serving paths agree."""
    return load_fashion_mnist(fmnist_dir, "test")


@pytest.fixture(scope="session")
def small_train(fmnist_dir) -> ImageSet:
    return limit(load_fashion_mnist(fmnist_dir, "train"), 1200, seed=0)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, small_train) -> Path:
    """A `default` model trained for one epoch on 1,100 images: enough to be non-trivial."""
    cfg = TrainConfig(arch="default", epochs=1, batch_size=64, threads=1, device="cpu")
    out = tmp_path_factory.mktemp("tiny-model")
    return run_training(cfg, small_train, out, {"name": "fashion-mnist-slice"}).model_path
