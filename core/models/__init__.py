"""The models shipped with the package, used when no other model is named: the Fashion-MNIST
model, and the photo model served beside it (core.routing)."""

from pathlib import Path

SHIPPED_MODEL_PATH = Path(__file__).resolve().parent / "default.safetensors"
PHOTO_MODEL_PATH = Path(__file__).resolve().parent / "photo.safetensors"
