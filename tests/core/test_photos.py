import pytest
import torch

from core.photos import (
    LICENSED_SOURCES,
    SOURCES,
    check_licence,
    check_sources,
    load_photo_variants,
    load_photos,
    parse_sources,
    read_manifest,
    select,
    unlicensed,
)
from core.preprocessing import preprocess_photo


def test_manifest_sources_and_splits(photos_root):
    records = read_manifest(photos_root)
    assert len(records) == 24
    assert {r.source for r in records} == {"clothingds", "ganesh"}
    assert {r.split for r in records} == {"train", "val"}


def test_val_is_never_for_training(photos_root):
    records = read_manifest(photos_root)
    with pytest.raises(ValueError, match="never for training"):
        select(records, "val", ["clothingds"], "train")
    with pytest.raises(ValueError, match="never for training"):
        load_photos(photos_root, "val", ["clothingds"], "photo-seg-v1", "train")
    assert len(select(records, "val", ["clothingds", "ganesh"], "evaluate")) == 12


def test_sources_filter_and_licence():
    assert LICENSED_SOURCES == ("clothingds",)
    assert unlicensed(["clothingds", "vinids", "ganesh"]) == ["vinids", "ganesh"]
    assert check_sources(["vinids", "clothingds"]) == ["clothingds", "vinids"]
    with pytest.raises(ValueError, match="choose from: clothingds, ruturaj, ganesh, vinids"):
        check_sources(["myntra"])


def test_sources_option_and_the_shipped_models_folder(tmp_path):
    from core.models import SHIPPED_MODEL_PATH

    assert parse_sources("vinids, clothingds") == ["clothingds", "vinids"]
    assert parse_sources("all") == list(SOURCES)
    check_licence(["clothingds"], SHIPPED_MODEL_PATH.parent)
    check_licence(["ganesh"], tmp_path)  # unlicensed data may train models that stay local
    with pytest.raises(ValueError, match="ganesh state no licence"):
        check_licence(["clothingds", "ganesh"], SHIPPED_MODEL_PATH.parent / "sub")


def test_photos_load_through_the_served_preprocessing(photos_root):
    photos = load_photos(photos_root, "train", ["clothingds"], "photo-seg-v1", "train")
    assert photos.images.images.shape == (6, 28, 28)
    assert photos.sources() == ["clothingds"] * 6
    first = (photos_root / photos.records[0].file).read_bytes()
    assert torch.equal(photos.images.images[0], torch.from_numpy(preprocess_photo(first)))
    assert photos.info["sources"] == ["clothingds"] and photos.info["items"] == 6
    again = load_photos(photos_root, "train", ["clothingds"], "photo-seg-v1", "train")
    assert again.info["files_sha256"] == photos.info["files_sha256"]
    both = load_photos(photos_root, "train", ["clothingds", "ganesh"], "photo-seg-v1", "train")
    assert both.info["files_sha256"] != photos.info["files_sha256"]


def test_variants_keep_the_served_photo_first_and_are_reproducible(photos_root):
    photos, variants = load_photo_variants(photos_root, ["clothingds"], "photo-seg-v1", 3, 0)
    assert variants.shape == (6, 4, 28, 28) and variants.dtype == torch.uint8
    assert torch.equal(variants[:, 0], photos.images.images)
    assert not torch.equal(variants[:, 1], variants[:, 0])
    _, again = load_photo_variants(photos_root, ["clothingds"], "photo-seg-v1", 3, 0)
    assert torch.equal(variants, again)
