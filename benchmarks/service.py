"""The service end to end, against the in-process Predictor and the naive tutorial design.

Starts a real stack in a temporary folder: an embedded Redis, `fashion-tagger up` (API +
worker, as a user runs it), then the naive Celery worker; all on this machine.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image

from benchmarks.common import Timer, fashion_tagger_cmd, numbered_pngs, stored_zip
from benchmarks.loadgen import classify_latencies, multipart_request, read_response
from cli.redis_server import EmbeddedRedis, free_port
from core.data import load_fashion_mnist

TERMINAL = ("succeeded", "failed", "cancelled")


def as_pngs(images) -> list[bytes]:
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image.numpy()).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def raw_throughput(pngs: list[bytes], images) -> dict:
    """The in-process Predictor on the same PNG bytes (decode + preprocess + forward), best
    backend and micro-batch; and on already-decoded tensors for reference."""
    from benchmarks.inference import best_rate
    from core.predictor import Predictor
    from core.training import to_float

    rates, tensor_rates, labels = {}, {}, None
    x = to_float(images)  # (N, 1, 28, 28)
    for backend in ("torch", "onnx"):
        predictor = Predictor.default(backend=backend, device="cpu")
        for batch in (64, 256, 1024):
            predictor.micro_batch = batch
            rates[f"{backend}/b{batch}"] = round(best_rate(
                lambda p=predictor: p.predict_images(pngs), len(pngs), repeats=2))
            tensor_rates[f"{backend}/b{batch}"] = round(best_rate(
                lambda p=predictor: p.logits(x), len(x), repeats=2))
        if backend == "onnx":  # what the CPU worker serves (backend auto)
            labels = [p.label_index for p in predictor.predict_images(pngs)]
    best = max(rates, key=rates.get)
    return {"rates": rates, "tensor_rates": tensor_rates, "best": best,
            "raw_img_per_s": rates[best], "offline_labels": labels}


@contextmanager
def running_stack(redis_url: str, data_dir: Path, fashion_mnist_dir: Path | None = None,
                  env_overrides: dict[str, str] | None = None, tree: Path | None = None):
    """`fashion-tagger up` on `redis_url`; with `tree`, the code of that checkout (another
    commit of this repository, for before/after runs on one machine) instead of this one."""
    port = free_port()
    # An open local server unless `env_overrides` names keys (benchmarks/abuse.py does).
    env = {**{k: v for k, v in os.environ.items() if k != "TAGGER_API_KEYS"},
           "TAGGER_REDIS_URL": redis_url, "TAGGER_DATA_DIR": str(data_dir),
           **(env_overrides or {})}
    if fashion_mnist_dir:
        env["TAGGER_FASHION_MNIST_DIR"] = str(fashion_mnist_dir)
    command = [*fashion_tagger_cmd(), "up"]
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
        command = [sys.executable, "-m", "cli.main", "up"]
    log = open(data_dir / "up.log", "wb")
    process = subprocess.Popen([*command, "--port", str(port), "--data-dir", str(data_dir)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tree)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stack did not become ready; see {data_dir / 'up.log'}")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(120)
        log.close()


def bulk_e2e(base: str, pngs: list[bytes]) -> dict:
    body = stored_zip(numbered_pngs(pngs))
    with httpx.Client(base_url=base, timeout=600) as client, Timer() as t:
        job = client.post("/v1/jobs", files={"archive": ("test.zip", body, "application/zip")})
        job.raise_for_status()
        job_id = job.json()["id"]
        while (status := client.get(f"/v1/jobs/{job_id}").json())["status"] not in TERMINAL:
            time.sleep(0.05)
        export = client.get(f"/v1/jobs/{job_id}/results", params={"format": "jsonl"})
    items = [json.loads(line) for line in export.text.splitlines() if line.strip()]
    return {"seconds": t.seconds, "status": status, "items": items}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def naive_throughput(redis_url: str, pngs: list[bytes], data_dir: Path, clients: int = 32
                     ) -> dict:
    """Images per second through the tutorial design (benchmarks/naive.py), driven over HTTP
    like the service: uploads with `clients` concurrent connections, then result polling."""
    env = {**os.environ, "NAIVE_REDIS_URL": redis_url}
    port = free_port()
    log = open(data_dir / "naive.log", "wb")
    children = [
        subprocess.Popen([sys.executable, "-m", "celery", "-A", "benchmarks.naive", "worker",
                          "--concurrency", "2", "--loglevel", "WARNING"], env=env, stdout=log,
                         stderr=subprocess.STDOUT),
        subprocess.Popen([sys.executable, "-m", "uvicorn", "benchmarks.naive:web", "--port",
                          str(port), "--log-level", "warning"], env=env, stdout=log,
                         stderr=subprocess.STDOUT),
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_naive_run(base, pngs[:4], clients))  # warm-up: model loaded in children
        with Timer() as t:
            labels = asyncio.run(_naive_run(base, pngs, clients))
        return {"img_per_s": len(pngs) / t.seconds, "labels": labels}
    finally:
        for child in children:
            child.terminate()
            child.wait(60)
        log.close()


async def _naive_run(base: str, pngs: list[bytes], clients: int) -> list[int]:
    """Each of `clients` connections takes the next image: POST /predict, then polls
    GET /result/{task_id} every 20 ms until the task ended. Returns labels in input order."""
    url = urlsplit(base)
    for _ in range(600):  # the server may still be starting
        try:
            _, writer = await asyncio.open_connection(url.hostname, url.port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.2)
    labels: list[int] = [-1] * len(pngs)
    next_image = iter(range(len(pngs)))

    async def one_client() -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            for i in next_image:
                writer.write(multipart_request(url.netloc, "/predict", "file", "x.png",
                                               pngs[i], "image/png"))
                task_id = json.loads((await read_response(reader))[1])["task_id"]
                poll = f"GET /result/{task_id} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode()
                while True:
                    writer.write(poll)
                    answer = json.loads((await read_response(reader))[1])
                    if answer["status"] in ("SUCCESS", "FAILURE"):
                        break
                    await asyncio.sleep(0.02)
                labels[i] = answer["result"]["label_index"]
        finally:
            writer.close()

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return labels


def run(data_dir: Path, naive_items: int = 2000) -> dict:
    images = load_fashion_mnist(data_dir, "test").images
    pngs = as_pngs(images)
    raw = raw_throughput(pngs, images)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with EmbeddedRedis(tmp_path / "redis") as server:
            with running_stack(server.url, tmp_path) as base:
                bulk_e2e(base, pngs[:512])  # warm-up: workers' first chunks, ONNX cache
                bulk = bulk_e2e(base, pngs)
                asyncio.run(classify_latencies(base, pngs, 1, 20))  # warm-up
                single = asyncio.run(classify_latencies(base, pngs, 1, 300))
                asyncio.run(classify_latencies(base, pngs, 32, 5))  # warm-up
                concurrent = asyncio.run(classify_latencies(base, pngs, 32, 20))
            naive = naive_throughput(server.url.rsplit("/", 1)[0] + "/1",
                                     pngs[:naive_items], tmp_path)
    items = bulk["items"]
    indices = sorted(item["index"] for item in items)
    by_name = {item["filename"]: item["label_index"] for item in items}
    offline = raw.pop("offline_labels")
    match = (indices == list(range(len(pngs)))
             and all(by_name.get(f"{i:05d}.png") == label for i, label in enumerate(offline)))
    e2e_rate = len(pngs) / bulk["seconds"]
    naive_rate = naive["img_per_s"]
    return {
        "raw_img_per_s": raw["raw_img_per_s"],
        "e2e_bulk_img_per_s": round(e2e_rate),
        "naive_img_per_s": round(naive_rate),
        "single_p50_ms": round(percentile(single, 50), 2),
        "single_p99_ms_32c": round(percentile(concurrent, 99), 2),
        "e2e_labels_match_offline": match,
        "ratios": {"e2e_over_raw": round(e2e_rate / raw["raw_img_per_s"], 3),
                   "e2e_over_naive": round(e2e_rate / naive_rate, 2)},
        "details": {
            "raw_best": raw["best"], "raw_rates_png_bytes": raw["rates"],
            "raw_rates_decoded_tensors": raw["tensor_rates"],
            "bulk_items": len(items), "bulk_job_status": bulk["status"]["status"],
            "bulk_failed": bulk["status"]["progress"]["failed"],
            "single_p99_ms": round(percentile(single, 99), 2),
            "concurrent_p50_ms_32c": round(percentile(concurrent, 50), 2),
            "naive_items": naive_items,
            "naive_labels_match_offline": naive["labels"] == offline[:naive_items],
        },
    }


def latency_spread(data_dir: Path, runs: int = 7, images: int = 2000) -> dict:
    """The 32-client figure of `run` repeated `runs` times on one warm stack: this shared
    2-core VM moves it by tens of milliseconds from minute to minute, so one run says little
    about where it usually lies."""
    pngs = as_pngs(load_fashion_mnist(data_dir, "test").images[:images])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with EmbeddedRedis(tmp_path / "redis") as server:
            with running_stack(server.url, tmp_path) as base:
                asyncio.run(classify_latencies(base, pngs, 32, 5))  # warm-up
                for _ in range(runs):
                    start = time.perf_counter()
                    latencies = asyncio.run(classify_latencies(base, pngs, 32, 20))
                    seconds = time.perf_counter() - start
                    rows.append({"p50_ms": round(percentile(latencies, 50), 2),
                                 "p99_ms": round(percentile(latencies, 99), 2),
                                 "requests_per_s": round(len(latencies) / seconds)})
    p99s = [row["p99_ms"] for row in rows]
    return {"runs": rows, "p99_ms_median": round(statistics.median(p99s), 2),
            "p99_ms_min": min(p99s), "p99_ms_max": max(p99s),
            "runs_within_150_ms": sum(p99 <= 150 for p99 in p99s)}
