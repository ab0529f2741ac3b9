"""Real photos through the service (issue 2/5, item 4), and the helpers the learning curve
(benchmarks/photos_curve.py) shares: a zip of photos, a bulk job followed to its end and
exported, its results scored against the manifest, the workers' stage histograms.

`throughput`: the real-photos val JPEGs as one zip through `fashion-tagger up` (POST /v1/jobs,
wait for the end, export) against the in-process serving predictor
(`core.routing.serving_predictor`, what `fashion-tagger predict` serves) on the same bytes,
both in one run; and where the time goes: preprocessing vs inference per image in-process
(`predict_images_timed`) and in the workers (GET /metrics: tagger_preprocess_seconds,
tagger_inference_seconds, tagger_batch_size; one observation per chunk).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from benchmarks.common import RESULTS_DIR, Timer, stored_zip
from benchmarks.service import TERMINAL, running_stack
from cli.redis_server import EmbeddedRedis
from core.labels import FASHION_MNIST_LABELS
from core.photo_eval import photo_records, score
from core.photos import PhotoRecord
from core.settings import get_settings

THROUGHPUT_PNG = "photos-throughput.png"
E2E_RUNS = 3
MICRO_BATCHES = (32, 128, 512)  # 512: the worker's default (core.predictor.Predictor)
KEEP = ("count", "accuracy", "errors", "per_class", "min_class", "per_source",
        "per_source_count", "review", "routes")


def member_name(index: int, record: PhotoRecord) -> str:
    """A zip member name that keeps the order and the original file name."""
    return f"{index:05d}-{Path(record.file).name}"


def run_zip_job(client: httpx.Client, body: bytes, model: str | None = None,
                poll_s: float = 0.05) -> dict:
    """POST /v1/jobs with `body` as the archive (pinned to `model` if given), poll until it
    ends, export every result as JSON lines: what a user of the bulk API does."""
    form = {"model": model} if model else {}
    start = time.perf_counter()
    created = client.post("/v1/jobs", files={"archive": ("photos.zip", body, "application/zip")},
                          data=form)
    created.raise_for_status()
    submitted = time.perf_counter()
    job_id = created.json()["id"]
    while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] not in TERMINAL:
        time.sleep(poll_s)
    ended = time.perf_counter()
    export = client.get(f"/v1/jobs/{job_id}/results", params={"format": "jsonl"})
    export.raise_for_status()
    done = time.perf_counter()
    items = [json.loads(line) for line in export.text.splitlines() if line.strip()]
    return {"seconds": done - start, "submit_s": submitted - start, "ended_s": ended - start,
            "job": job, "items": items}


def score_items(records: Sequence[PhotoRecord], names: Sequence[str], items: list[dict],
                review_below: float | None) -> dict:
    """Each record's result (matched by member name) against its manifest label, compared by
    label name: a result with no label (an error, a missing item) counts as wrong."""
    by_name = {item["filename"]: item for item in items}
    found = [by_name.get(name) for name in names]
    ok = [i if i is not None and i["status"] == "ok" else None for i in found]
    predicted = [FASHION_MNIST_LABELS.index(i["label"]) if i else None for i in ok]
    figures = score(records, predicted, [i and i["confidence"] for i in ok],
                    FASHION_MNIST_LABELS, review_below,
                    [(i.get("route") or "none") if i else "error" for i in ok])
    out = {k: figures[k] for k in KEEP if k in figures}
    # the service's own flag (the model's review threshold), as a user sees it
    unflagged = [p == r.label_index for r, i, p in zip(records, ok, predicted, strict=True)
                 if i is not None and not i["needs_review"]]
    out["needs_review_share"] = 1 - len(unflagged) / max(1, len(found))
    out["unflagged_accuracy"] = sum(unflagged) / len(unflagged) if unflagged else None
    out["model_versions"] = sorted({i["model_version"] for i in ok if i and i["model_version"]})
    return out


def stage_totals(metrics_text: str, queue: str = "bulk") -> dict[str, float]:
    """`_sum` and `_count` of the workers' per-chunk histograms for one queue, from a
    Prometheus text page: {"preprocess_seconds_sum": s, ..., "batch_size_sum": images}."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        name = family.name.removeprefix("tagger_")
        if name not in ("preprocess_seconds", "inference_seconds", "batch_size"):
            continue
        for sample in family.samples:
            if sample.labels.get("queue") == queue and sample.name.endswith(("_sum", "_count")):
                totals[sample.name.removeprefix("tagger_")] = sample.value
    return totals


def stage_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


def worker_stages(delta: dict[str, float], wall_s: float) -> dict:
    """Per image (ms) and in all (s) from a histogram delta covering one job."""
    images = delta.get("batch_size_sum", 0.0)
    pre, inf = delta.get("preprocess_seconds_sum", 0.0), delta.get("inference_seconds_sum", 0.0)
    return {"chunks": int(delta.get("batch_size_count", 0)), "images": int(images),
            "preprocess_s": round(pre, 3), "inference_s": round(inf, 3),
            "preprocess_ms_per_image": round(1000 * pre / images, 2) if images else None,
            "inference_ms_per_image": round(1000 * inf / images, 2) if images else None,
            # worker-seconds of predictor work per second of the job: up to the processes
            "predictor_busy_over_wall": round((pre + inf) / wall_s, 2) if wall_s else None}


# -- the throughput part ----------------------------------------------------------------------

def in_process(datas: list[bytes], repeats: int = 2) -> dict:
    """serving_predictor() (the shipped pair) on the same bytes, per backend and micro-batch:
    the fastest of `repeats` timed runs after a warm-up, with its StageTimes."""
    from core.routing import RoutedPredictor, serving_predictor

    rows, labels = {}, None
    for backend in ("onnx", "torch"):
        predictor = serving_predictor(None, backend=backend, device="cpu")
        parts = ([predictor.photo, predictor.fmnist] if isinstance(predictor, RoutedPredictor)
                 else [predictor])
        for batch in MICRO_BATCHES:
            for part in parts:
                part.micro_batch = batch
            predictor.predict_images_timed(datas[:64])  # warm-up
            runs = []
            for _ in range(repeats):
                with Timer() as t:
                    results, times = predictor.predict_images_timed(datas)
                runs.append((t.seconds, times))
            seconds, times = min(runs, key=lambda run: run[0])
            rows[f"{backend}/b{batch}"] = {
                "seconds": round(seconds, 3), "img_per_s": round(len(datas) / seconds, 1),
                "preprocess_ms_per_image": round(1000 * times.preprocess_s / len(datas), 2),
                "inference_ms_per_image": round(1000 * times.inference_s / len(datas), 2)}
            if backend == "onnx" and labels is None:  # what the CPU worker serves
                labels = [getattr(r, "label", None) for r in results]
    best = max(rows, key=lambda k: rows[k]["img_per_s"])
    return {"rows": rows, "best": best, "labels": labels}


def throughput(data_dir: Path, photos_dir: Path, **_options) -> dict:
    records = photo_records(photos_dir, "val")
    datas = [(photos_dir / r.file).read_bytes() for r in records]
    names = [member_name(i, r) for i, r in enumerate(records)]
    body = stored_zip(list(zip(names, datas, strict=True)))
    offline = in_process(datas)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with EmbeddedRedis(tmp_path / "redis") as server, \
                running_stack(server.url, tmp_path, data_dir) as base, \
                httpx.Client(base_url=base, timeout=600) as client:
            # warm-up: both inference processes load the routed pair (ONNX cache) on a chunk
            run_zip_job(client, stored_zip(list(zip(names, datas, strict=True))[:64]))
            runs = []
            for _ in range(E2E_RUNS):
                before = stage_totals(client.get("/metrics").text)
                run = run_zip_job(client, body)
                runs.append((run, stage_delta(before, stage_totals(client.get("/metrics").text))))
            # the median run (by wall time) is the figure; in-process takes its best run
            e2e, delta = sorted(runs, key=lambda r: r[0]["seconds"])[len(runs) // 2]
            live = client.get("/readyz").json().get("workers")
    offline_labels = offline.pop("labels")
    by_name = {item["filename"]: item for item in e2e["items"]}
    same = sum(by_name.get(n, {}).get("label") == label
               for n, label in zip(names, offline_labels, strict=True))
    best = offline["rows"][offline["best"]]
    e2e_rate = len(datas) / e2e["seconds"]
    figures = {
        "photos": len(datas), "zip_bytes": len(body),
        "in_process": offline, "in_process_img_per_s": best["img_per_s"],
        "e2e": {"seconds": round(e2e["seconds"], 3), "img_per_s": round(e2e_rate, 1),
                "submit_s": round(e2e["submit_s"], 3), "ended_s": round(e2e["ended_s"], 3),
                "export_s": round(e2e["seconds"] - e2e["ended_s"], 3),
                "status": e2e["job"]["status"], "progress": e2e["job"]["progress"],
                "model_version": e2e["job"]["model_version"],
                "workers": worker_stages(delta, e2e["seconds"]),
                "runs_s": [round(run["seconds"], 3) for run, _ in runs]},
        "e2e_over_in_process": round(e2e_rate / best["img_per_s"], 3),
        "labels_match_in_process": f"{same}/{len(names)}",
        "accuracy_e2e": score_items(records, names, e2e["items"], None)["accuracy"],
        "live_workers": live,
        # `fashion-tagger up`: the inference worker's processes (0 = one per core)
        "inference_processes": get_settings().worker_concurrency or len(os.sched_getaffinity(0)),
        "plot": f"benchmarks/results/{THROUGHPUT_PNG}",
    }
    plot_throughput(figures, RESULTS_DIR / THROUGHPUT_PNG)
    return figures


def plot_throughput(figures: dict, path: Path) -> Path:
    """Milliseconds per photo by stage: in-process (best row) and the service's workers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = figures["in_process"]["rows"][figures["in_process"]["best"]]
    workers = figures["e2e"]["workers"]
    wall = {"in-process\n(" + figures["in_process"]["best"] + ")": 1000 / best["img_per_s"],
            "service e2e": 1000 / figures["e2e"]["img_per_s"]}
    stages = {"in-process\n(" + figures["in_process"]["best"] + ")":
              (best["preprocess_ms_per_image"], best["inference_ms_per_image"]),
              "service workers\n(per photo, any process)":
              (workers["preprocess_ms_per_image"] or 0, workers["inference_ms_per_image"] or 0)}
    fig, (ax_stage, ax_wall) = plt.subplots(1, 2, figsize=(10, 4))
    names = list(stages)
    pre = [stages[n][0] for n in names]
    inf = [stages[n][1] for n in names]
    ax_stage.bar(names, pre, label="decode + preprocess")
    ax_stage.bar(names, inf, bottom=pre, label="inference")
    ax_stage.set(ylabel="ms per photo", title="Where the time goes (per photo)")
    ax_stage.legend(loc="lower center")
    ax_wall.bar(list(wall), list(wall.values()), color=["tab:gray", "tab:green"])
    ax_wall.set(ylabel="wall ms per photo",
                title=f"Wall time per photo ({figures['photos']} val JPEGs)")
    for ax in (ax_stage, ax_wall):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
