"""The shipped checkpoints and the ONNX exports that ship beside them: a worker without torch
serves the exports, so each must be the same model (labels equal, logits within float
rounding), and the torch-free predictor must answer exactly as the checkpoint's own."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from core.checkpoint import load_checkpoint
from core.export import check_onnx, check_samples
from core.models import PHOTO_MODEL_PATH, SHIPPED_MODEL_PATH, onnx_beside
from core.predictor import Predictor
from core.routing import RoutedPredictor, serving_predictor


@pytest.mark.parametrize("checkpoint", [SHIPPED_MODEL_PATH, PHOTO_MODEL_PATH],
                         ids=["default", "photo"])
def test_each_shipped_onnx_export_is_its_checkpoint(checkpoint):
    model, meta = load_checkpoint(checkpoint)
    onnx = onnx_beside(checkpoint).read_bytes()
    assert check_onnx(onnx, model, check_samples(tuple(meta.input_shape))) < 1e-4


def png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image.numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_torch_free_pair_answers_exactly_as_the_checkpoints_pair(fmnist_test,
                                                                     fixture_photos):
    """Fashion-MNIST test PNGs and real photos, through the shipped exports (no torch) and
    through the checkpoints (exported again here): the same predictions, bit for bit."""
    lean = RoutedPredictor(*(Predictor.from_onnx(onnx_beside(p).read_bytes(),
                                                 load_checkpoint(p)[1], threads=1)
                             for p in (PHOTO_MODEL_PATH, SHIPPED_MODEL_PATH)))
    full = serving_predictor(device="cpu", backend="onnx", threads=1)
    images = [png(image) for image in fmnist_test.images[:1000]]
    images += [p.read_bytes() for p in fixture_photos]
    lean_predictions, full_predictions = lean.predict_images(images), full.predict_images(images)
    assert [p.route for p in lean_predictions[-len(fixture_photos):]] == ["photo"] * len(
        fixture_photos)
    assert lean_predictions == full_predictions
