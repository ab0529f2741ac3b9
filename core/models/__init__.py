"""The model shipped with the package: used when no other model is named."""

from pathlib import Path

SHIPPED_MODEL_PATH = Path(__file__).resolve().parent / "default.safetensors"
