"""Before/after on one machine in one run: the service of another commit of this repository
and the service of this checkout, started alternately on the same data, `rounds` times each.
This VM's speed moves from minute to minute, so only figures measured side by side compare.

Per round and tree: the 10,000 Fashion-MNIST test PNGs as one zip through the whole stack
(images/s, labels checked against the offline predictor), the 32-client single-image p99,
Redis's own count of EVALSHA calls per chunk (one per Lua script call, one round trip each
where they are not pipelined together), and the memory (RSS) of each inference worker
process after the job.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
from pathlib import Path

import psutil
import redis

from benchmarks.common import REPO
from benchmarks.loadgen import classify_latencies
from benchmarks.service import as_pngs, bulk_e2e, percentile, running_stack
from cli.redis_server import EmbeddedRedis
from core.data import load_fashion_mnist


def checkout(ref: str, where: Path, name: str) -> Path:
    """A detached worktree of `ref` (removed with the temporary folder it lives in)."""
    tree = where / name
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(tree), ref],
                   check=True, capture_output=True)
    return tree


def short_ref(ref: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref],
                          check=True, capture_output=True, text=True).stdout.strip()


def remove_checkout(tree: Path) -> None:
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                   capture_output=True)


def worker_children_rss_mib(work: Path) -> list[float]:
    """RSS of the processes that run the bulk chunks: the children of the stack's `inference@`
    Celery worker (the stack of this round: its data dir is `work`)."""
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            env = process.info["environ"] or {}
            if "inference@" in cmdline and env.get("TAGGER_DATA_DIR") == str(work):
                found += [round(child.memory_info().rss / 2**20, 1)
                          for child in process.children()]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sorted(found)


def one_round(tree: Path | None, pngs: list[bytes], offline: list[int], work: Path) -> dict:
    with EmbeddedRedis(work / "redis") as server:
        client = redis.Redis.from_url(server.url)
        with running_stack(server.url, work, tree=tree) as base:
            bulk_e2e(base, pngs[:512])  # warm-up: the workers' first chunks, ONNX cache
            client.config_resetstat()
            bulk = bulk_e2e(base, pngs)
            calls = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
            rss = worker_children_rss_mib(work)
            asyncio.run(classify_latencies(base, pngs, 32, 5))  # warm-up
            latencies = asyncio.run(classify_latencies(base, pngs, 32, 20))
    by_name = {item["filename"]: item["label_index"] for item in bulk["items"]}
    chunks = -(-len(pngs) // 256)  # TAGGER_CHUNK_SIZE left at its default in both trees
    return {
        "e2e_bulk_img_per_s": round(len(pngs) / bulk["seconds"]),
        "single_p99_ms_32c": round(percentile(latencies, 99), 2),
        "evalsha_per_chunk": round(calls / chunks, 2),
        "worker_child_rss_mib": rss,
        "worker_child_rss_max_mib": max(rss) if rss else None,
        "labels_match_offline": len(by_name) == len(pngs) and all(
            by_name.get(f"{i:05d}.png") == label for i, label in enumerate(offline)),
    }


def run(data_dir: Path, baseline_ref: str, rounds: int = 3,
        current_ref: str | None = None) -> dict:
    """`current_ref` None: this checkout, as it is; else that commit."""
    from core.predictor import Predictor

    images = load_fashion_mnist(data_dir, "test").images
    pngs = as_pngs(images)
    offline = [p.label_index for p in Predictor.default(device="cpu").predict_images(pngs)]
    head = short_ref(current_ref or "HEAD")
    results: dict[str, list[dict]] = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        tree = checkout(baseline_ref, tmp_path, "baseline")
        current = checkout(current_ref, tmp_path, "current") if current_ref else None
        try:
            for n in range(rounds):
                for name, code in (("baseline", tree), ("current", current)):
                    work = tmp_path / f"{name}-{n}"
                    work.mkdir()
                    results[name].append(one_round(code, pngs, offline, work))
        finally:
            for worktree in (tree, current):
                if worktree is not None:
                    remove_checkout(worktree)

    def medians(rows: list[dict]) -> dict:
        keys = ("e2e_bulk_img_per_s", "single_p99_ms_32c", "evalsha_per_chunk",
                "worker_child_rss_max_mib")
        return {key: statistics.median(row[key] for row in rows if row[key] is not None)
                for key in keys}

    before, after = medians(results["baseline"]), medians(results["current"])
    return {
        "baseline_ref": baseline_ref, "current_ref": head, "rounds": rounds,
        "images": len(pngs), "baseline": before, "current": after,
        "ratios": {"e2e_bulk": round(after["e2e_bulk_img_per_s"]
                                     / before["e2e_bulk_img_per_s"], 3),
                   "single_p99": round(after["single_p99_ms_32c"]
                                       / before["single_p99_ms_32c"], 3)},
        "all_labels_match_offline": all(row["labels_match_offline"]
                                        for rows in results.values() for row in rows),
        "per_round": results,
    }
