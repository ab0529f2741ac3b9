import pytest
import torch

from core.data import limit, load_fashion_mnist, train_val_split


def test_split_is_stratified_disjoint_and_reproducible(small_train):
    train, val = train_val_split(small_train, 0.25, seed=3)
    assert len(train) + len(val) == len(small_train)
    counts = torch.bincount(val.targets, minlength=10)
    expected = torch.bincount(small_train.targets, minlength=10).double() * 0.25
    assert torch.all((counts - expected.round()).abs() <= 1)
    again_train, again_val = train_val_split(small_train, 0.25, seed=3)
    assert torch.equal(val.images, again_val.images)
    train_rows = {bytes(img.numpy()) for img in train.images}
    assert not any(bytes(img.numpy()) in train_rows for img in val.images)


def test_limit_and_checksum(small_train):
    part = limit(small_train, 100, seed=0)
    assert len(part) == 100
    assert part.checksum() == limit(small_train, 100, seed=0).checksum()
    assert part.checksum() != limit(small_train, 100, seed=1).checksum()
    assert limit(small_train, None, seed=0) is small_train


def test_official_splits_load(fmnist_test):
    assert fmnist_test.images.shape == (10_000, 28, 28)
    assert fmnist_test.images.dtype == torch.uint8


def test_missing_data_dir_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="TAGGER_FASHION_MNIST_DIR"):
        load_fashion_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="choose one of: train, test"):
        load_fashion_mnist(tmp_path, "validation")
