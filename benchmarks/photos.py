"""Real product photos, measured the way a user meets them: `fashion-tagger predict` on the
real-photos val files (and on the Fashion-MNIST test PNGs, which the same command routes to
the Fashion-MNIST model).

Parts (`python -m benchmarks photos --part NAME`), each saved as
benchmarks/results/photos-<part>.json:
- `accuracy`: overall / per class / per source accuracy, confusion matrix, calibration table
  and reliability diagram on real-photos val; Fashion-MNIST test through the same command;
  the shipped Fashion-MNIST model alone on the photos (the figure before this work); and a
  model trained on all of real-photos train (`--compare`, weights not shipped).
- `learning-curve`: fine-tuning through the API on k own photos per class, each version
  scored on real-photos val through the service (benchmarks/photos_curve.py).
- `throughput`: the val photos as one zip through the service against the in-process
  predictor on the same bytes, and where the time goes (benchmarks/photos_service.py).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.accuracy import write_test_pngs
from benchmarks.common import REPO, RESULTS_DIR, Timer, fashion_tagger_cmd
from benchmarks.photos_curve import learning_curve
from benchmarks.photos_service import throughput
from core.calibration import cross_fit
from core.checkpoint import load_checkpoint
from core.labels import FASHION_MNIST_LABELS
from core.models import PHOTO_MODEL_PATH, SHIPPED_MODEL_PATH
from core.photo_eval import photo_records, score
from core.plots import plot_confusion, plot_reliability

CONFUSION_PNG = "photos-confusion.png"
RELIABILITY_PNG = "photos-reliability.png"


def predict_json(paths: list[Path], model: Path | None = None, top_k: int = 10) -> list[dict]:
    """`fashion-tagger predict --format json` on `paths`, one item per file, in order."""
    cmd = [*fashion_tagger_cmd(), "predict", *map(str, paths), "--format", "json",
           "--top-k", str(top_k)]
    if model is not None:
        cmd += ["--model", str(model)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout
    return json.loads(out)


def photo_figures(photos_dir: Path, model: Path | None = None) -> dict:
    """Real-photos val through `predict`: accuracy, calibration, and a held-out estimate of
    the calibration (2-fold: temperature and threshold fitted on one half of val, measured on
    the other, from the predicted probabilities)."""
    records = photo_records(photos_dir, "val")
    with Timer() as t:
        items = predict_json([photos_dir / r.file for r in records], model)
    review = None
    meta = load_checkpoint(model or PHOTO_MODEL_PATH)[1]
    if meta.route_fashion_mnist_to or model is None:
        review = meta.review_below
    ok = [None if item["error"] else item for item in items]
    figures = score(records, [i and i["label_index"] for i in ok],
                    [i and i["confidence"] for i in ok], FASHION_MNIST_LABELS, review,
                    [i["route"] if i else "error" for i in ok])
    figures["predict_wall_s"] = round(t.seconds, 1)
    figures["ms_per_photo"] = round(1000 * t.seconds / len(records), 2)
    # log-probabilities are logits up to a constant per row: softmax(log p / T') refits them
    log_probs = torch.full((len(items), len(FASHION_MNIST_LABELS)), -30.0, dtype=torch.float64)
    for row, item in enumerate(items):
        for s in item.get("top_k") or []:
            log_probs[row, FASHION_MNIST_LABELS.index(s["label"])] = max(-30.0, _log(s["score"]))
    targets = torch.tensor([r.label_index for r in records])
    figures["calibration_held_out_2fold"] = cross_fit(log_probs, targets)
    return figures


def _log(p: float) -> float:
    import math

    return math.log(p) if p > 0 else -30.0


def fmnist_figures(data_dir: Path) -> dict:
    """The 10,000 Fashion-MNIST test PNGs through the same default `predict`."""
    with tempfile.TemporaryDirectory() as tmp:
        truth = write_test_pngs(data_dir, Path(tmp))
        with Timer() as t:
            items = predict_json(sorted(Path(tmp).glob("*.png")), top_k=1)
    correct = sum(truth[Path(i["path"]).name] == i["label_index"] for i in items)
    routes: dict[str, int] = {}
    for i in items:
        routes[i.get("route", "error")] = routes.get(i.get("route", "error"), 0) + 1
    return {"images": len(truth), "accuracy": correct / len(truth), "routes": routes,
            "predict_wall_s": round(t.seconds, 1)}


def model_summary(path: Path) -> dict:
    meta = load_checkpoint(path)[1]
    return {"path": str(path.relative_to(REPO) if path.is_relative_to(REPO) else path),
            "weights_sha256": meta.weights_sha256, "preprocessing": meta.preprocessing,
            "tta": meta.tta, "temperature": meta.temperature, "review_below": meta.review_below,
            "photo_sources": (meta.train_config or {}).get("photos_sources"),
            "licensed": meta.dataset.get("licensed"),
            "train_seconds": meta.metrics.get("train_seconds"),
            "fmnist_val_accuracy": meta.metrics.get("fmnist_val_accuracy"),
            "calibration_fitted_on_val": meta.metrics.get("calibration")}


def slim(figures: dict) -> dict:
    """The comparison runs keep accuracy figures only."""
    keep = ("count", "accuracy", "per_class", "min_class", "per_source", "review", "routes")
    return {k: figures[k] for k in keep if k in figures}


def accuracy(data_dir: Path, photos_dir: Path, compare: Path | None = None, **_options) -> dict:
    photos = photo_figures(photos_dir)
    plot_confusion(photos["confusion"], FASHION_MNIST_LABELS, RESULTS_DIR / CONFUSION_PNG,
                   f"real-photos val via predict, accuracy {photos['accuracy']:.4f}")
    plot_reliability(photos["reliability"], RESULTS_DIR / RELIABILITY_PNG,
                     "real-photos val via predict (shipped pair)")
    out = {
        "predict_command": "fashion-tagger predict <real-photos val files> --format json"
                           " --top-k 10",
        "model": model_summary(PHOTO_MODEL_PATH),
        "photos_val": photos,
        "fmnist_test": fmnist_figures(data_dir),
        "before_shipped_fmnist_model_alone": slim(photo_figures(photos_dir, SHIPPED_MODEL_PATH)),
        "confusion_png": f"benchmarks/results/{CONFUSION_PNG}",
        "reliability_png": f"benchmarks/results/{RELIABILITY_PNG}",
    }
    if compare is not None:
        out["all_photos_not_shipped"] = {"model": model_summary(compare),
                                         "photos_val": slim(photo_figures(photos_dir, compare))}
    return out


# name -> part(data_dir, photos_dir, **options) -> figures; `all` runs these in order
PARTS: dict[str, Callable[..., dict]] = {
    "accuracy": accuracy,
    "learning-curve": learning_curve,
    "throughput": throughput,
}
