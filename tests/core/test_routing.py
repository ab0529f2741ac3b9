import io

import pytest
import torch
from PIL import Image

from core.predictor import ItemError, Prediction, Predictor
from core.preprocessing import preprocess, preprocess_photo, to_tensor
from core.routing import RoutedPredictor, serving_predictor


def png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def fmnist_predictor(tiny_model_path) -> Predictor:
    return Predictor.from_checkpoint(tiny_model_path, backend="torch", threads=1)


@pytest.fixture(scope="module")
def photo_predictor(photo_model_path) -> Predictor:
    return Predictor.from_checkpoint(photo_model_path, backend="torch", threads=1)


@pytest.fixture(scope="module")
def routed(photo_predictor, fmnist_predictor) -> RoutedPredictor:
    return RoutedPredictor(photo_predictor, fmnist_predictor)


@pytest.fixture(scope="module")
def mixed(fmnist_test, fixture_photos) -> list[bytes]:
    """Fashion-MNIST PNGs and real photos interleaved, and two undecodable items."""
    photos = [p.read_bytes() for p in fixture_photos]
    fm = [png(img) for img in fmnist_test.images[:6]]
    return [fm[0], photos[0], b"", fm[1], photos[1], photos[2], b"junk", *fm[2:], *photos[3:]]


def test_each_image_goes_to_its_model_and_says_so(routed, photo_predictor, fmnist_predictor,
                                                  mixed):
    results = routed.predict_images(mixed, top_k=3)
    assert len(results) == len(mixed)
    for data, result in zip(mixed, results, strict=True):
        if data in (b"", b"junk"):
            assert isinstance(result, ItemError)
            continue
        single = fmnist_predictor if result.route == "fashion-mnist" else photo_predictor
        (expected,) = single.predict_images([data], top_k=3)
        assert result.route in ("fashion-mnist", "photo")
        assert result.label_index == expected.label_index
        assert result.confidence == pytest.approx(expected.confidence, abs=1e-6)
        assert expected.route == "single"
    routes = [r.route for r in results if isinstance(r, Prediction)]
    assert routes.count("fashion-mnist") == 6 and routes.count("photo") == 6


def test_fashion_mnist_images_are_served_exactly_as_the_model_alone(routed, fmnist_predictor,
                                                                    fmnist_test):
    images = [png(img) for img in fmnist_test.images[:200]]
    routed_labels = [r.label_index for r in routed.predict_images(images)]
    alone = [r.label_index for r in fmnist_predictor.predict_images(images)]
    assert routed_labels == alone


def test_batch_equals_single(routed, mixed):
    batch = routed.predict_images(mixed)
    singles = [routed.predict_images([item])[0] for item in mixed]
    for b, s in zip(batch, singles, strict=True):
        assert type(b) is type(s)
        if isinstance(b, Prediction):
            assert (b.label_index, b.route) == (s.label_index, s.route)
            assert b.confidence == pytest.approx(s.confidence, abs=1e-5)


def test_photo_confidence_is_calibrated_by_the_temperature(photo_predictor, fixture_photos):
    x = torch.stack([to_tensor(preprocess_photo(p.read_bytes())) for p in fixture_photos])
    logits = photo_predictor.logits(x)
    expected = (logits / 1.5).softmax(1).amax(1)
    got = [r.confidence for r in photo_predictor.predict_images(
        [p.read_bytes() for p in fixture_photos])]
    assert torch.allclose(torch.tensor(got), expected, atol=1e-6)
    assert photo_predictor.preprocessing == "photo-seg-v1"


def test_photo_model_preprocesses_with_its_own_preprocessing(photo_predictor, fmnist_predictor,
                                                             fixture_photos):
    data = fixture_photos[0].read_bytes()
    assert not (preprocess_photo(data) == preprocess(data)).all()
    x = to_tensor(preprocess_photo(data)).unsqueeze(0)
    (p,) = photo_predictor.predict_images([data])
    assert p.label_index == int(photo_predictor.logits(x).argmax(1))


def test_mismatched_pair_is_refused(photo_predictor, fmnist_predictor):
    with pytest.raises(ValueError, match="names no Fashion-MNIST model"):
        RoutedPredictor(fmnist_predictor, fmnist_predictor)



def test_photo_model_routing_elsewhere_is_refused(photo_model_path, fmnist_predictor):
    from core.checkpoint import load_checkpoint

    model, meta = load_checkpoint(photo_model_path)
    stranger = Predictor(model, meta.model_copy(update={"route_fashion_mnist_to": "0" * 64}),
                         backend="torch")
    with pytest.raises(ValueError, match="routes Fashion-MNIST images to weights 000000"):
        RoutedPredictor(stranger, fmnist_predictor)


def test_timed_and_empty(routed, mixed):
    results, times = routed.predict_images_timed(mixed)
    assert times.preprocess_s > 0 and times.inference_s > 0
    assert routed.predict_images([]) == []
    assert set(routed.versions) == {"photo", "fashion-mnist"}


def test_serving_predictor_pairs_a_photo_model_only_with_the_shipped_model(photo_model_path,
                                                                          tiny_model_path):
    # The fixture photo model routes to the tiny model, not to the shipped one: served alone.
    alone = serving_predictor(photo_model_path, backend="torch", threads=1)
    assert isinstance(alone, Predictor) and alone.preprocessing == "photo-seg-v1"
    assert isinstance(serving_predictor(tiny_model_path, backend="torch"), Predictor)


def test_shipped_photo_model_is_licensed_and_pairs_with_the_shipped_model():
    from core.checkpoint import load_checkpoint
    from core.models import PHOTO_MODEL_PATH, SHIPPED_MODEL_PATH

    if not PHOTO_MODEL_PATH.exists():
        pytest.skip("no shipped photo model")
    _, meta = load_checkpoint(PHOTO_MODEL_PATH)
    _, fmnist = load_checkpoint(SHIPPED_MODEL_PATH)
    assert meta.train_config["photos_sources"] == ["clothingds"]
    assert meta.dataset["photos"]["sources"] == ["clothingds"] and meta.dataset["licensed"]
    assert meta.dataset["photos"]["split"] == "train"
    assert meta.route_fashion_mnist_to == fmnist.weights_sha256
    assert meta.review_below is not None and meta.temperature > 0
    assert isinstance(serving_predictor(backend="torch"), RoutedPredictor)
