import json

import pytest
import torch

from core.checkpoint import load_checkpoint
from core.data import limit
from core.export import check_onnx, check_samples, export_onnx
from core.photo_augment import worn_images
from core.photo_runs import EpochMix, run_photo_training
from core.predictor import Predictor
from core.recipes import recipe
from core.routing import RoutedPredictor


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory, small_train, photos_root, tiny_model_path):
    """The `photo` recipe, shrunk: two members, one epoch each of 300 Fashion-MNIST images,
    40 worn shots and the six fixture photos x2 with one variant each, from the tiny model."""
    cfg = recipe("photo").model_copy(update={
        "epochs": 1, "fmnist_items": 300, "worn_items": 40, "photo_repeat": 2,
        "photo_variants": 1, "threads": 1, "device": "cpu", "batch_size": 64, "members": 2})
    model, parent = load_checkpoint(tiny_model_path)
    out = tmp_path_factory.mktemp("photo-run")
    run = run_photo_training(cfg, limit(small_train, 600, 0), photos_root, out,
                             {"name": "fashion-mnist", "split": "train"},
                             init_state=model.state_dict(), parent=parent)
    return run, parent, out


def test_checkpoint_records_recipe_sources_calibration_and_route(photo_run):
    run, parent, out = photo_run
    model, meta = load_checkpoint(run.model_path)
    assert meta.arch == "default-x2" and len(model.members) == 2
    assert meta.preprocessing == "photo-seg-v1"
    assert meta.route_fashion_mnist_to == parent.weights_sha256
    assert meta.train_config["photos_sources"] == ["clothingds"]
    assert meta.dataset["photos"]["sources"] == ["clothingds"] and meta.dataset["licensed"]
    assert meta.dataset["photos"]["files_sha256"] and meta.dataset["fashion_mnist"]["checksum"]
    assert meta.temperature > 0 and meta.tta in ("none", "hflip")
    m = meta.metrics
    assert set(m["photos_val_per_source"]) == {"clothingds", "ganesh"}
    assert 0 <= m["photos_val_accuracy"] <= 1 and "fmnist_val_accuracy" in m
    assert "held_out_2fold" in m["calibration"]
    report = json.loads((out / "metrics.json").read_text())
    assert len(report["photos_val"]["coverage"]) == 101
    assert (out / "reliability.png").exists() and (out / "confusion.png").exists()


def test_trained_photo_model_pairs_with_its_parent(photo_run, tiny_model_path, fixture_photos):
    run, _, _ = photo_run
    routed = RoutedPredictor.from_checkpoints(run.model_path, tiny_model_path, backend="torch")
    results = routed.predict_images([p.read_bytes() for p in fixture_photos])
    assert {r.route for r in results} == {"photo"}


def test_photo_model_onnx_matches_torch(photo_run, fixture_photos, tmp_path):
    from core.preprocessing import preprocess_photo, stack_arrays

    run, _, _ = photo_run
    model, meta = load_checkpoint(run.model_path)
    shape = tuple(meta.input_shape)
    onnx = export_onnx(model, shape)
    assert check_onnx(onnx, model, check_samples(shape)) < 1e-4
    photos = stack_arrays([preprocess_photo(p.read_bytes()) for p in fixture_photos])
    assert check_onnx(onnx, model, photos) < 1e-4
    a = Predictor.from_checkpoint(run.model_path, backend="torch")
    b = Predictor.from_checkpoint(run.model_path, backend="onnx", onnx_cache_dir=tmp_path)
    data = [p.read_bytes() for p in fixture_photos]
    assert [r.label_index for r in a.predict_images(data)] == \
           [r.label_index for r in b.predict_images(data)]


def test_epoch_mix_draws_the_configured_items(small_train):
    x, y = worn_images(small_train.images.numpy(), small_train.targets.numpy(), 30, 0)
    assert x.shape == (30, 28, 28) and set(y.tolist()) <= {0, 1, 2, 3, 4, 6}
    from core.data import ImageSet

    worn = ImageSet(torch.from_numpy(x), torch.from_numpy(y), small_train.labels)
    photos = torch.zeros(4, 3, 28, 28, dtype=torch.uint8)
    mix = EpochMix(small_train, worn, photos, torch.arange(4), 100, 10, 5)
    epoch = mix.for_epoch(torch.Generator().manual_seed(0))
    assert len(epoch) == len(mix) == 100 + 10 + 20
    assert torch.equal(epoch.targets[110:], torch.arange(4).repeat(5))
