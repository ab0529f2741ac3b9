"""ONNX export, checked by running the exported graph in onnxruntime against torch."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

INPUT_NAME = "images"  # (N, *input_shape) float32 in [0, 1]; (N, 1, 28, 28) for ours
OUTPUT_NAME = "logits"  # (N, num_classes) float32
DEFAULT_INPUT_SHAPE = (1, 28, 28)  # (C, H, W): ModelMeta.input_shape


def export_onnx(model: nn.Module, input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE) -> bytes:
    """The model as ONNX bytes with a dynamic batch dimension; `input_shape` is one image's
    (C, H, W), the checkpoint's `input_shape`."""
    model = model.cpu().eval()
    example = (torch.rand(2, *input_shape),)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model, example, path, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},),
            dynamo=True, verbose=False, external_data=False,
        )
        return path.read_bytes()


def ort_session(onnx_bytes: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def check_onnx(onnx_bytes: bytes, model: nn.Module, samples: torch.Tensor) -> float:
    """Max absolute logit difference between onnxruntime and torch on `samples`.

    Raises if the argmax differs on any sample: the two backends must agree on labels.
    """
    session = ort_session(onnx_bytes, threads=1)
    (ort_logits,) = session.run(None, {INPUT_NAME: samples.numpy().astype(np.float32)})
    with torch.inference_mode():
        torch_logits = model.cpu().eval()(samples).numpy()
    if not np.array_equal(ort_logits.argmax(1), torch_logits.argmax(1)):
        raise AssertionError("onnxruntime and torch disagree on the predicted labels")
    return float(np.abs(ort_logits - torch_logits).max())


def check_samples(input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE, n: int = 64,
                  seed: int = 0) -> torch.Tensor:
    """`(n, *input_shape)` uniform random inputs for check_onnx, reproducibly."""
    return torch.rand(n, *input_shape, generator=torch.Generator().manual_seed(seed))


def cached_onnx(model: nn.Module, weights_sha256: str, cache_dir: Path | None,
                input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE) -> bytes:
    """Export once per weights version and machine: the export takes seconds, a read does not."""
    if cache_dir is None or not weights_sha256:
        return export_onnx(model, input_shape)
    path = Path(cache_dir) / f"{weights_sha256}.onnx"
    if path.exists():
        return path.read_bytes()
    data = export_onnx(model, input_shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return data
