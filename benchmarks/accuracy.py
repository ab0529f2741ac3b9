"""Shipped-model accuracy the way a user measures it: the official test images written out
as PNG files and classified by `fashion-tagger predict --format csv`."""

from __future__ import annotations

import csv
import io
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

from benchmarks.common import Timer, fashion_tagger_cmd
from core.data import load_fashion_mnist


def write_test_pngs(data_dir: Path, out: Path) -> dict[str, int]:
    """`<index>.png` per test image; returns file name -> true label index."""
    test = load_fashion_mnist(data_dir, "test")
    truth = {}
    for i, (image, target) in enumerate(zip(test.images, test.targets, strict=True)):
        name = f"{i:05d}.png"
        Image.fromarray(image.numpy()).save(out / name)
        truth[name] = int(target)
    return truth


def predict_accuracy(data_dir: Path, model: Path | None = None) -> dict:
    cli = fashion_tagger_cmd()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        truth = write_test_pngs(data_dir, folder)
        cmd = [*cli, "predict", str(folder), "--format", "csv"]
        if model:
            cmd += ["--model", str(model)]
        with Timer() as t:
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    predicted = {Path(r["path"]).name: r["label_index"] for r in rows}
    correct = sum(str(truth[name]) == predicted.get(name) for name in truth)
    return {
        "predict_command": "fashion-tagger predict <folder of 10,000 test PNGs> --format csv",
        "images": len(truth),
        "rows": len(rows),
        "errors": sum(r["label_index"] == "" for r in rows),
        "accuracy": correct / len(truth),
        "predict_wall_s": round(t.seconds, 1),
    }
