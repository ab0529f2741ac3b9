"""How many of their own photos a retailer needs (issue 2/5, item 3): the `learning-curve` part
of `python -m benchmarks photos`, through the API as a user runs it.

On a fresh `fashion-tagger up` (embedded Redis, an operator key), for k = 10, 30, 100 labelled
photos per class drawn from real-photos train (any source: these weights are never shipped;
nested samples, fixed seed; never the val split):

1. `POST /v1/datasets`: a zip of class folders named as the active photo model's labels
   (GET /v1/models; `T-shirt_top` for `T-shirt/top`);
2. `POST /v1/training-jobs {"dataset", "recipe": "finetune", "init_from": <active>,
   "activate": "never"}`, followed to its end;
3. that version scored on all of real-photos val through the service: one zip to
   `POST /v1/jobs` with `model=<version>`, each result's label against the manifest's.

The untouched active version (v2, the shipped photo model) is scored the same way as k = 0.

Two curves, one per recipe a request may name (nothing else in the request changes):
- `finetune`: the general fine-tuning recipe (10 epochs, batch 128, a weight average of decay
  0.999 from the first step). On 100-1,000 photos that is 10-80 optimizer steps, after which
  the served weights still hold 0.999^(n-1) of the first step's: 92-99% the start;
- `photo-finetune`: the recipe for a merchant's photos: the same in batches of 8 for at least
  2,400 steps (core.recipes: epochs follow the dataset's size), ~9% of the start for every k.
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

from benchmarks.common import RESULTS_DIR, Timer, stored_zip
from benchmarks.photos_service import member_name, run_zip_job, score_items
from benchmarks.service import running_stack
from benchmarks.training_api import follow
from cli.redis_server import EmbeddedRedis
from core.photo_eval import photo_records
from core.photos import SOURCES, PhotoRecord, read_manifest, select
from core.recipes import recipe

K_VALUES = (10, 30, 100)
SEED = 0
CURVES = ("finetune", "photo-finetune")  # the recipes the requests name
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


def ema_start_share(steps: int, decay: float | None) -> float:
    """The weight the EMA of `steps` optimizer steps still gives the weights after the first
    (torch's AveragedModel copies them at its first update, then averages with `decay`)."""
    return decay ** (steps - 1) if decay and steps else 0.0


def dataset_members(sample: Sequence[PhotoRecord], labels: Sequence[str]) -> list[tuple[str, str]]:
    """(zip member name, photo file) pairs: `<label>/<file name>`, the class folder named as
    the model's label with a "/" (which a folder cannot hold) as "_": `T-shirt_top`."""
    return [(f"{labels[r.label_index].replace('/', '_')}/{Path(r.file).name}", r.file)
            for r in sample]


def learning_curve(data_dir: Path, photos_dir: Path, **_options) -> dict:
    samples = sample_per_class(read_manifest(photos_dir), K_VALUES, SEED)
    val = photo_records(photos_dir, "val")
    val_names = [member_name(i, r) for i, r in enumerate(val)]
    val_zip = stored_zip([(n, (photos_dir / r.file).read_bytes())
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
            for curve in CURVES:
                for k in K_VALUES:
                    point = one_k(client, k, samples[k], parent, photos_dir, curve, val,
                                  val_names, val_zip)
                    points.append({"curve": curve, **point})
                    print(f"learning curve {curve} k={k}:"
                          f" {point.get('val', {}).get('accuracy')}", flush=True)
    figures = {"parent": {key: parent[key] for key in ("version", "arch", "labels",
                                                       "weights_sha256", "source")},
               "seed": SEED, "k_values": list(K_VALUES),
               "recipes": {name: recipe(name).model_dump(include={
                   "epochs", "batch_size", "lr", "schedule", "ema_decay", "min_steps"})
                   for name in CURVES},
               "val_photos": len(val),
               "points": points, "wall_s": round(whole.seconds, 1),
               "plot": f"benchmarks/results/{CURVE_PNG}"}
    plot_curve(points, RESULTS_DIR / CURVE_PNG)
    return figures


def one_k(client: httpx.Client, k: int, sample: list[PhotoRecord], parent: dict,
          photos_dir: Path, curve: str, val: list[PhotoRecord], val_names: list[str],
          val_zip: bytes) -> dict:
    start = time.perf_counter()
    point: dict = {"k": k, "photos": len(sample),
                   "train_sources": dict(Counter(r.source for r in sample))}
    members = [(name, (photos_dir / file).read_bytes())
               for name, file in dataset_members(sample, parent["labels"])]
    upload = client.post("/v1/datasets", data={"name": f"learning-curve k={k}"},
                         files={"archive": (f"k{k}.zip", stored_zip(members), "application/zip")})
    point["dataset"] = answer(upload, ("id", "labels", "total"))
    request = {"dataset": point["dataset"].get("id"), "recipe": curve,
               "init_from": parent["version"], "activate": "never", "seed": SEED}
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
    point["outcome"] = why
    if version is not None:
        record = client.get(f"/v1/models/{version}").json()
        point["version"] = version
        point["model_metrics"] = {key: record["metrics"].get(key) for key in (
            "train_items", "val_items", "val_accuracy", "train_seconds")}
        steps = point["training"]["epochs"] * math.ceil(
            point["model_metrics"]["train_items"] / recipe(curve).batch_size)
        point["optimizer_steps"] = steps
        point["ema_start_share"] = round(ema_start_share(steps, recipe(curve).ema_decay), 3)
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


def plot_curve(points: list[dict], path: Path) -> Path:
    """Val accuracy against k (photos per class), overall and per source, one panel per
    curve; k = 0 (the shipped photo model) starts each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = [p for p in points if p["k"] == 0 and "val" in p]
    curves = sorted({p["curve"] for p in points if p["k"]}, key=CURVES.index)
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
