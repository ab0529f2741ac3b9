"""The CPU worker's pool, concurrency, torch threads and bulk chunk size, chosen by
measurement: each configuration runs a fresh `fashion-tagger up` (settings through TAGGER_*
variables) and is timed on the same bulk upload and the same concurrent single-image load.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from benchmarks.loadgen import classify_latencies
from benchmarks.service import as_pngs, bulk_e2e, percentile, running_stack
from cli.redis_server import EmbeddedRedis
from core.data import load_fashion_mnist

# (pool, processes, torch threads per process, chunk size); the first is the shipped default.
CONFIGS = [
    ("prefork", 2, 1, 256),
    ("prefork", 1, 2, 256),
    ("threads", 2, 1, 256),
    ("solo", 1, 2, 256),
    ("prefork", 2, 1, 64),
    ("prefork", 2, 1, 1024),
]


def measure(pngs: list[bytes], pool: str, processes: int, threads: int, chunk: int) -> dict:
    env = {"TAGGER_WORKER_POOL": pool, "TAGGER_WORKER_CONCURRENCY": str(processes),
           "TAGGER_TORCH_THREADS": str(threads), "TAGGER_CHUNK_SIZE": str(chunk)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with EmbeddedRedis(tmp_path / "redis") as server, \
                running_stack(server.url, tmp_path, env_overrides=env) as base:
            bulk_e2e(base, pngs[:512])  # warm-up: every process has its model
            bulk = bulk_e2e(base, pngs)
            asyncio.run(classify_latencies(base, pngs, 32, 5))  # warm-up
            latencies = asyncio.run(classify_latencies(base, pngs, 32, 20))
    ok = bulk["status"]["status"] == "succeeded" and len(bulk["items"]) == len(pngs)
    return {"pool": pool, "processes": processes, "threads": threads, "chunk_size": chunk,
            "bulk_img_per_s": round(len(pngs) / bulk["seconds"]) if ok else None,
            "p50_ms_32c": round(percentile(latencies, 50), 1),
            "p99_ms_32c": round(percentile(latencies, 99), 1)}


def run(data_dir: Path) -> dict:
    pngs = as_pngs(load_fashion_mnist(data_dir, "test").images)
    rows = [measure(pngs, *config) for config in CONFIGS]
    return {"configs": rows, "default": rows[0]}
