import io

import pytest
import torch
from PIL import Image

from core.export import check_onnx, export_onnx
from core.predictor import ItemError, Prediction, Predictor
from core.training import to_float


@pytest.fixture(scope="module")
def torch_predictor(tiny_model_path) -> Predictor:
    return Predictor.from_checkpoint(tiny_model_path, device="cpu", backend="torch", threads=1)


@pytest.fixture(scope="module")
def onnx_predictor(tiny_model_path, tmp_path_factory) -> Predictor:
    cache = tmp_path_factory.mktemp("onnx-cache")
    return Predictor.from_checkpoint(tiny_model_path, device="cpu", backend="onnx", threads=1,
                                     onnx_cache_dir=cache)


def png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def test_onnx_backend_matches_torch(torch_predictor, onnx_predictor, fmnist_test):
    x = to_float(fmnist_test.images[:500])
    a, b = torch_predictor.logits(x), onnx_predictor.logits(x)
    assert torch.equal(a.argmax(1), b.argmax(1))
    assert torch.allclose(a, b, atol=1e-4)


def test_hflip_tta_averages_each_image_with_its_mirror(tiny_model_path, torch_predictor,
                                                       fmnist_test):
    x = to_float(fmnist_test.images[:64])
    tta = Predictor.from_checkpoint(tiny_model_path, device="cpu", backend="torch", threads=1,
                                    tta="hflip", micro_batch=16)
    plain, mirrored = torch_predictor.logits(x), torch_predictor.logits(x.flip(-1))
    assert torch.allclose(tta.logits(x), (plain + mirrored) / 2, atol=1e-5)
    assert torch_predictor.tta == "none"  # the checkpoint's own setting
    # Only the images whose top probability is below tta_below get the second opinion.
    below = float(plain.softmax(1).amax(1).median())
    unsure = plain.softmax(1).amax(1) < below
    partial = Predictor.from_checkpoint(tiny_model_path, device="cpu", backend="torch",
                                        threads=1, tta="hflip", tta_below=below).logits(x)
    assert torch.allclose(partial[unsure], ((plain + mirrored) / 2)[unsure], atol=1e-5)
    assert torch.allclose(partial[~unsure], plain[~unsure], atol=1e-5)
    assert 0 < int(unsure.sum()) < len(x)
    with pytest.raises(ValueError, match="tta"):
        Predictor.from_checkpoint(tiny_model_path, device="cpu", backend="torch", tta="rot90")


def test_export_check_reports_tiny_difference(tiny_model_path):
    from core.checkpoint import load_checkpoint

    model, _ = load_checkpoint(tiny_model_path)
    assert check_onnx(export_onnx(model), model, torch.rand(16, 1, 28, 28)) < 1e-4


def test_micro_batching_does_not_change_results(tiny_model_path, fmnist_test):
    x = to_float(fmnist_test.images[:300])
    whole = Predictor.from_checkpoint(tiny_model_path, backend="torch", micro_batch=1000)
    small = Predictor.from_checkpoint(tiny_model_path, backend="torch", micro_batch=7)
    assert torch.allclose(whole.logits(x), small.logits(x), atol=1e-5)


def test_batch_results_equal_single_results(onnx_predictor, fmnist_test):
    images = [png(img) for img in fmnist_test.images[:40]]
    batch = onnx_predictor.predict_images(images)
    singles = [onnx_predictor.predict_images([img])[0] for img in images]
    for b, s in zip(batch, singles, strict=True):
        assert b.label_index == s.label_index
        assert b.confidence == pytest.approx(s.confidence, abs=1e-5)


def test_service_path_equals_offline_evaluation(onnx_predictor, fmnist_test):
    """PNG bytes -> preprocessing -> predictor gives the offline argmax on the test split."""
    x = fmnist_test.images[:200]
    offline = onnx_predictor.logits(to_float(x)).argmax(1).tolist()
    served = [p.label_index for p in onnx_predictor.predict_images([png(i) for i in x])]
    assert served == offline


def test_prediction_fields_and_top_k(onnx_predictor, fmnist_test):
    (p,) = onnx_predictor.predict_images([png(fmnist_test.images[0])], top_k=4)
    assert isinstance(p, Prediction)
    assert p.label == onnx_predictor.labels[p.label_index]
    assert [s.label for s in p.top_k][0] == p.label and len(p.top_k) == 4
    scores = [s.score for s in p.top_k]
    assert scores == sorted(scores, reverse=True) and scores[0] == p.confidence
    (q,) = onnx_predictor.predict_images([png(fmnist_test.images[0])], top_k=50)
    assert len(q.top_k) == 10


def test_bad_items_get_errors_in_place(onnx_predictor, fmnist_test):
    good = png(fmnist_test.images[0])
    results = onnx_predictor.predict_images([b"", good, b"nope", good])
    assert [type(r) for r in results] == [ItemError, Prediction, ItemError, Prediction]
    assert results[0].error == "empty file"
    assert results[1] == results[3]


def test_empty_input_and_unknown_backend(onnx_predictor, tiny_model_path):
    assert onnx_predictor.predict_images([]) == []
    with pytest.raises(ValueError, match="choose one of: auto, torch, onnx"):
        Predictor.from_checkpoint(tiny_model_path, backend="tensorrt")


def test_onnx_export_is_cached_per_weights(tiny_model_path, tmp_path):
    first = Predictor.from_checkpoint(tiny_model_path, backend="onnx", onnx_cache_dir=tmp_path)
    cached = list(tmp_path.glob("*.onnx"))
    assert [p.stem for p in cached] == [first.meta.weights_sha256]
    Predictor.from_checkpoint(tiny_model_path, backend="onnx", onnx_cache_dir=tmp_path)
    assert list(tmp_path.glob("*.onnx")) == cached
