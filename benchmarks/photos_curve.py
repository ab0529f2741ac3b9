"""How many of their own photos a retailer needs (issue 2/5, item 3): the `learning-curve` part
of `python -m benchmarks photos`, through the API as a user runs it.

On a fresh `fashion-tagger up` (embedded Redis, an operator key), for k = 10, 30, 100 labelled
photos per class drawn from real-photos train (any source: these weights are never shipped;
nested samples, fixed seed; never the val split):

1. `POST /v1/datasets`: a zip of class folders named as the active photo model's labels
   (GET /v1/models);
2. `POST /v1/training-jobs {"dataset", "recipe": "finetune", "init_from": <active>,
   "activate": "never"}`, followed to its end;
3. that version scored on all of real-photos val through the service: one zip to
   `POST /v1/jobs` with `model=<version>`, each result's label against the manifest's.

The untouched active version (v2, the shipped photo model) is scored the same way as k = 0.

Two curves, each fine-tune asked for in the request (no other field changed):
- `recipe`: the finetune recipe as it is (10 epochs, batch 128; `epochs` overrides);
- `steps`: batch 8 (the smallest the API takes) and, per k, the epochs that make about 2,400
  optimizer steps. The recipe averages the weights (EMA, decay 0.999, from the first step), so
  after n steps the served weights still hold 0.999^n of the first step's: with the recipe's
  10 epochs of batch 128, 99% at k = 10 (10 steps) and 92% at k = 100 (80 steps): that curve
  measures the average's inertia more than the photos. At ~2,400 steps the share is ~9%, the
  same for every k, so this curve varies the photos alone. Chosen from that arithmetic, not on
  val (one run, no search).

`train_fallback`: where step 2 is refused, the same training is run in this process instead
(the worker's own config, initial model and `core.runs.run_training`; the photos in class
folders named by the parent's label index, as worker.trainer writes them), its version
registered in the stack's registry and scored through the service like the others. Every
such point records the API's refusal; it is never taken silently.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx

from benchmarks.common import RESULTS_DIR, Timer
from benchmarks.photos_service import member_name, photos_zip, run_zip_job, score_items
from benchmarks.service import running_stack
from benchmarks.training_api import follow
from cli.redis_server import EmbeddedRedis
from core.photo_eval import photo_records
from core.photos import SOURCES, PhotoRecord, read_manifest, select
from core.recipes import recipe
from core.settings import get_settings

K_VALUES = (10, 30, 100)
SEED = 0
STEPS_BATCH, STEPS = 8, 2400  # the `steps` curve
VAL_FRACTION = 1 / 12  # core.recipes.TrainConfig.val_fraction: held out of each dataset
CURVE_PNG = "photos-learning-curve.png"
OPERATOR_KEY = "bench-curve-operator"  # TAGGER_API_KEYS=key:tenant:operator


def sample_per_class(records: Sequence[PhotoRecord], ks: Sequence[int], seed: int
                     ) -> dict[int, list[PhotoRecord]]:
    """k -> k train photos of each class, nested (the 10 are among the 30, the 30 among the
    100): each class's train photos in one shuffled order, k taken from its start. The val
    split is refused by core.photos.select (purpose "train")."""
    train = select(list(records), "train", SOURCES, "train")
    by_class: dict[int, list[PhotoRecord]] = {}
    for r in sorted(train, key=lambda r: r.file):
        by_class.setdefault(r.label_index, []).append(r)
    rng = random.Random(seed)
    for label in sorted(by_class):
        rng.shuffle(by_class[label])
    short = {label: len(rs) for label, rs in by_class.items() if len(rs) < max(ks)}
    if short:
        raise ValueError(f"classes with fewer than {max(ks)} train photos: {short}")
    return {k: [r for label in sorted(by_class) for r in by_class[label][:k]] for k in ks}


def epochs_for_steps(k: int, classes: int, steps: int, batch: int,
                     val_fraction: float = VAL_FRACTION, most: int = 200) -> int:
    """Epochs that make about `steps` optimizer steps on k photos per class, of which
    core.data.train_val_split holds round(k * val_fraction) per class out (`most`: the API's
    upper bound on epochs)."""
    train_items = classes * (k - round(k * val_fraction))
    return max(1, min(most, round(steps / math.ceil(train_items / batch))))


def ema_start_share(steps: int, decay: float | None) -> float:
    """The weight the EMA of `steps` optimizer steps still gives the weights after the first
    (torch's AveragedModel copies them at its first update, then averages with `decay`)."""
    return decay ** (steps - 1) if decay and steps else 0.0


def dataset_members(sample: Sequence[PhotoRecord], labels: Sequence[str]) -> list[tuple[str, str]]:
    """(zip member name, photo file) pairs: `<label>/<file name>`, the class folder named
    exactly as the model's label, as a retailer would name it."""
    return [(f"{labels[r.label_index]}/{Path(r.file).name}", r.file) for r in sample]


def learning_curve(data_dir: Path, photos_dir: Path, epochs: int | None = None,
                   train_fallback: bool = False, **_options) -> dict:
    samples = sample_per_class(read_manifest(photos_dir), K_VALUES, SEED)
    val = photo_records(photos_dir, "val")
    val_names = [member_name(i, r) for i, r in enumerate(val)]
    val_zip = photos_zip([(n, (photos_dir / r.file).read_bytes())
                          for n, r in zip(val_names, val, strict=True)])
    env = {"TAGGER_API_KEYS": f"{OPERATOR_KEY}:bench:operator"}
    points = []
    with Timer() as whole, tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with EmbeddedRedis(tmp_path / "redis") as server, \
                running_stack(server.url, tmp_path, data_dir, env) as base, \
                httpx.Client(base_url=base, timeout=600,
                             headers={"Authorization": f"Bearer {OPERATOR_KEY}"}) as client:
            models = client.get("/v1/models").json()
            parent = next(m for m in models["items"] if m["version"] == models["active"])
            start = time.perf_counter()
            scored = run_zip_job(client, val_zip, model=parent["version"])
            points.append({"curve": "shipped", "k": 0, "photos": 0, "version": parent["version"],
                           "val": score_items(val, val_names, scored["items"], None),
                           "score_wall_s": round(scored["seconds"], 1),
                           "wall_s": round(time.perf_counter() - start, 1)})
            classes = len(parent["labels"])
            curves = {"recipe": {k: {"epochs": epochs} if epochs else {} for k in K_VALUES},
                      "steps": {k: {"batch_size": STEPS_BATCH, "epochs": epochs_for_steps(
                          k, classes, STEPS, STEPS_BATCH)} for k in K_VALUES}}
            for curve, fields in curves.items():
                for k in K_VALUES:
                    point = one_k(client, server.url, k, samples[k], parent, photos_dir,
                                  fields[k], train_fallback, val, val_names, val_zip)
                    points.append({"curve": curve, **point})
                    print(f"learning curve {curve} k={k}:"
                          f" {point.get('val', {}).get('accuracy')}", flush=True)
    figures = {"parent": {key: parent[key] for key in ("version", "arch", "labels",
                                                       "weights_sha256", "source")},
               "seed": SEED, "k_values": list(K_VALUES), "epochs_requested": epochs,
               "steps_curve": {"batch_size": STEPS_BATCH, "steps": STEPS},
               "train_fallback": train_fallback, "val_photos": len(val),
               "points": points, "wall_s": round(whole.seconds, 1),
               "plot": f"benchmarks/results/{CURVE_PNG}"}
    plot_curve(points, RESULTS_DIR / CURVE_PNG)
    return figures


def one_k(client: httpx.Client, redis_url: str, k: int, sample: list[PhotoRecord],
          parent: dict, photos_dir: Path, fields: dict, train_fallback: bool,
          val: list[PhotoRecord], val_names: list[str], val_zip: bytes) -> dict:
    start = time.perf_counter()
    point: dict = {"k": k, "photos": len(sample),
                   "train_sources": dict(Counter(r.source for r in sample))}
    members = [(name, (photos_dir / file).read_bytes())
               for name, file in dataset_members(sample, parent["labels"])]
    upload = client.post("/v1/datasets", data={"name": f"learning-curve k={k}"},
                         files={"archive": (f"k{k}.zip", photos_zip(members), "application/zip")})
    point["dataset"] = answer(upload, ("id", "labels", "total"))
    request = {"dataset": point["dataset"].get("id"), "recipe": "finetune",
               "init_from": parent["version"], "activate": "never", "seed": SEED, **fields}
    version, why = None, f"POST /v1/datasets answered {upload.status_code}"
    if upload.status_code == 201:
        with Timer() as t:
            created = client.post("/v1/training-jobs", json=request)
            job = follow(client, created.json()["id"], 2) if created.status_code == 202 else None
        point["training_request"] = request
        point["training_answer"] = answer(created, ("id", "status"))
        why = f"POST /v1/training-jobs answered {created.status_code}"
        if job is not None:
            point["training"] = {"path": "api", "wall_s": round(t.seconds, 1),
                                 **{key: job[key] for key in ("id", "status", "elapsed_s",
                                                              "error", "request")},
                                 "epochs": len(job["history"])}
            version = job["model_version"]
            why = f"the training job ended {job['status']}"
    if version is None and train_fallback and point["dataset"].get("id"):
        version, point["training"] = train_in_process(redis_url, request, sample,
                                                      photos_dir, parent["arch"])
        point["training"]["path"] = f"in-process ({why})"
    if version is not None:
        record = client.get(f"/v1/models/{version}").json()
        point["version"] = version
        point["model_metrics"] = {key: record["metrics"].get(key) for key in (
            "train_items", "val_items", "val_accuracy", "train_seconds")}
        used = point["training"].get("request") or point["training"]["config"]
        steps = point["training"]["epochs"] * math.ceil(
            point["model_metrics"]["train_items"] / used["batch_size"])
        point["optimizer_steps"] = steps
        point["ema_start_share"] = round(ema_start_share(steps, recipe("finetune").ema_decay), 3)
        scored = run_zip_job(client, val_zip, model=version)
        point["val"] = score_items(val, val_names, scored["items"], None)
        point["score_wall_s"] = round(scored["seconds"], 1)
    point["wall_s"] = round(time.perf_counter() - start, 1)
    return point


def answer(response: httpx.Response, keep: Sequence[str]) -> dict:
    """A response as recorded: its status, and the fields kept or the error it gave."""
    body = response.json()
    if response.is_success:
        return {"status_code": response.status_code, **{k: body.get(k) for k in keep}}
    return {"status_code": response.status_code, "error": body.get("error", body)}


def train_in_process(redis_url: str, request: dict, sample: list[PhotoRecord],
                     photos_dir: Path, arch: str) -> tuple[str, dict]:
    """worker.trainer.train_and_register for `request`, in this process, with the photos in
    class folders named by the parent's label index (the order of its labels), as the
    worker writes a dataset out before core.data.load_image_folder reads it."""
    import redis

    from core.data import ImageSet, load_image_folder
    from core.export import check_onnx, export_onnx
    from core.runs import run_training
    from core.training import to_float
    from store.registry import ModelRegistry
    from worker.trainer import cfg_input_shape, initial_model, train_config

    settings = get_settings()
    registry = ModelRegistry(redis.Redis.from_url(redis_url))
    with Timer() as t, tempfile.TemporaryDirectory(prefix="curve-") as tmp:
        cfg = train_config({**request, "arch": arch}, settings)  # as the API fills it in
        init_state, parent = initial_model(registry, request["init_from"])
        for n, r in enumerate(sample):
            folder = Path(tmp) / "data" / f"{r.label_index:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{n}{Path(r.file).suffix}").write_bytes((photos_dir / r.file).read_bytes())
        images, problems = load_image_folder(Path(tmp) / "data", settings.max_image_pixels,
                                             parent.preprocessing)
        data = ImageSet(images.images, images.targets, tuple(parent.labels))
        run = run_training(cfg, data, Path(tmp) / "run",
                           {"name": "dataset", "id": request["dataset"],
                            "unusable_images": len(problems)}, None, None, init_state, parent)
        checkpoint = run.model_path.read_bytes()
        onnx = export_onnx(run.result.model, tuple(cfg_input_shape(parent)))
        check_onnx(onnx, run.result.model, to_float(data.images[:32]))
        version = registry.register(checkpoint, "benchmark:photos-learning-curve", onnx)
    assert version is not None
    return version, {"path": "in-process", "wall_s": round(t.seconds, 1),
                     "epochs": cfg.epochs, "config": {key: getattr(cfg, key) for key in (
                         "arch", "epochs", "batch_size", "lr", "schedule", "ema_decay",
                         "val_fraction", "seed", "augment")}}


def plot_curve(points: list[dict], path: Path) -> Path:
    """Val accuracy against k (photos per class), overall and per source, one panel per
    curve; k = 0 (the shipped photo model) starts each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = [p for p in points if p["k"] == 0 and "val" in p]
    curves = sorted({p["curve"] for p in points if p["k"]}, key=["recipe", "steps"].index)
    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.5), sharey=True,
                             squeeze=False)
    for ax, curve in zip(axes[0], curves, strict=True):
        scored = start + [p for p in points if p["curve"] == curve and "val" in p]
        ks = [p["k"] for p in scored]
        ax.plot(ks, [100 * p["val"]["accuracy"] for p in scored], marker="o", linewidth=2.5,
                color="black", label="all val photos")
        for source in SOURCES:
            values = [100 * p["val"]["per_source"].get(source, float("nan")) for p in scored]
            ax.plot(ks, values, marker=".", alpha=0.7, label=source)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set(xlabel="own labelled photos per class (k; 0 = the shipped photo model)",
               title=f"curve '{curve}'")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("real-photos val accuracy (%)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Fine-tuned from the shipped photo model, scored through the service")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
