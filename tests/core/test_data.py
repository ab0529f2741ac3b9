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


def write_photo(path, shape: str) -> None:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (120, 160), "white")
    draw = ImageDraw.Draw(img)
    if shape == "box":
        draw.rectangle((30, 40, 90, 120), fill=(20, 20, 20))
    else:
        draw.ellipse((30, 40, 90, 120), fill=(20, 20, 20))
    img.save(path)


def test_image_folder_uses_folder_names_as_labels(tmp_path):
    from core.data import load_image_folder

    for label in ("boxes", "circles"):
        (tmp_path / label).mkdir()
        for i in range(3):
            write_photo(tmp_path / label / f"{i}.png", "box" if label == "boxes" else "circle")
    (tmp_path / "circles" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (tmp_path / "notes.txt").write_text("top-level files are ignored")
    data, problems = load_image_folder(tmp_path)
    assert data.labels == ("boxes", "circles")
    assert data.targets.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.images.shape == (6, 28, 28)
    assert data.images[:, 0, 0].max() < 10 and data.images[:, 14, 14].min() > 200
    assert [p.path for p in problems] == ["circles/broken.jpg"]
