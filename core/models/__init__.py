"""The models shipped with the package, used when no other model is named: the Fashion-MNIST
model, and the photo model served beside it (core.routing)."""

from pathlib import Path

SHIPPED_MODEL_PATH = Path(__file__).resolve().parent / "default.safetensors"
PHOTO_MODEL_PATH = Path(__file__).resolve().parent / "photo.safetensors"


def onnx_beside(checkpoint: Path) -> Path:
    """Where a checkpoint's ONNX export ships (`fashion-tagger export`): beside it, so a worker
    without torch can serve it from the start (tests/core check each pair agrees)."""
    return Path(checkpoint).with_suffix(".onnx")
