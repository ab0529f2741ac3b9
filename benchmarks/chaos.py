"""Chaos: the five faults of tests/e2e/test_faults.py, on 10,000-image jobs, with the
production settings (chunk lease 60 s, reaper every 5 s, upload stall 30 s, per-URL deadline
30 s). Each scenario runs a fresh stack on this machine: a Redis server with its append-only
file, a real API process (uvicorn), real Celery workers (prefork, 2 processes), and kills one
of them with SIGKILL mid-job.

Per scenario: seconds from the fault to the job's end, the results exported, each index
exactly once or not (duplicates, lost items), labels against the offline predictor, and what
the API answered while the fault lasted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import redis

from benchmarks.common import numbered_pngs, stored_zip
from benchmarks.hostile import HostileServer, hostile_urls
from benchmarks.service import as_pngs
from cli.redis_server import EmbeddedRedis, free_port
from core.data import load_fashion_mnist
from store import keys

TERMINAL = ("succeeded", "failed", "cancelled")
KEY = "chaos-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Stack:
    """Redis, the API and workers in `root`, on production settings (private fetches allowed:
    the images live on loopback)."""

    def __init__(self, root: Path, tree: Path | None = None) -> None:
        self.root = root
        self.tree = tree  # another commit's checkout to run instead of this one (before/after)
        self.redis = EmbeddedRedis(root / "redis").start()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TAGGER_")} | {
            "TAGGER_REDIS_URL": self.redis.url, "TAGGER_API_KEYS": f"{KEY}:chaos",
            "TAGGER_DATA_DIR": str(root), "TAGGER_FETCH_ALLOW_PRIVATE": "1",
            "TAGGER_LOG_FORMAT": "text"} | ({"PYTHONPATH": str(tree)} if tree else {})
        self.api = self.start_api()
        self.worker = self.start_worker()

    def start_api(self) -> subprocess.Popen:
        log = open(self.root / f"api-{uuid.uuid4().hex[:6]}.log", "wb")
        process = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--port",
                                    str(self.port)], env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=self.tree)
        wait(lambda: answers(f"{self.url}/healthz"), 60)
        return process

    def start_worker(self) -> subprocess.Popen:
        name = f"chaos-{uuid.uuid4().hex[:6]}@bench"
        log = open(self.root / f"{name}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q",
             "interactive,bulk,webhooks", "--pool", "prefork", "--concurrency", "2", "-n", name,
             "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=self.tree)
        client = redis.Redis.from_url(self.redis.url)
        wait(lambda: client.zscore(keys.WORKERS_KEY, name) is not None, 180)
        return process

    def kill_worker(self) -> None:
        try:
            os.killpg(self.worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.worker.wait()

    def close(self) -> None:
        self.kill_worker()
        self.api.kill()
        self.api.wait()
        self.redis.stop()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait(check: Callable[[], object], timeout_s: float, every_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not true within {timeout_s} s")
        time.sleep(every_s)
    return value


def job_status(stack: Stack, job_id: str) -> dict:
    return httpx.get(f"{stack.url}/v1/jobs/{job_id}", headers=AUTH, timeout=10).json()


def ended(stack: Stack, job_id: str, timeout_s: float = 900) -> dict:
    def check() -> dict | None:
        try:
            job = job_status(stack, job_id)
        except (httpx.HTTPError, ValueError):
            return None
        return job if job.get("status") in TERMINAL else None
    return wait(check, timeout_s, every_s=0.2)


def mid_job(stack: Stack, job_id: str, total: int) -> None:
    wait(lambda: total * 0.1 < job_status(stack, job_id)["progress"]["done"] < total * 0.6,
         300, every_s=0.01)


def outcome(stack: Stack, job_id: str, fault_at: float, offline: list[int] | None,
            by_name: Callable[[dict], int]) -> dict:
    job = ended(stack, job_id)
    fault_to_end = time.monotonic() - fault_at
    export = httpx.get(f"{stack.url}/v1/jobs/{job_id}/results", params={"format": "jsonl"},
                       headers=AUTH, timeout=120)
    items = [json.loads(line) for line in export.text.splitlines() if line.strip()]
    counts = Counter(item["index"] for item in items)
    total = job["progress"]["total"]
    result = {
        "status": job["status"], "fault_to_end_s": round(fault_to_end, 1),
        "progress": job["progress"], "results": len(items),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "lost": total - len(counts),  # items without any result
        "statuses": dict(Counter(item["status"] for item in items)),
    }
    if offline is not None:
        result["labels_match_offline"] = all(
            item["label_index"] == offline[by_name(item)] for item in items
            if item["status"] == "ok")
    return result


def by_filename(item: dict) -> int:
    return int(item["filename"].split(".")[0])


def kill_child(stack: Stack, images: list[bytes], offline: list[int]) -> dict:
    job_id = submit(stack, images)
    mid_job(stack, job_id, len(images))
    child = psutil.Process(stack.worker.pid).children()[0]
    os.kill(child.pid, signal.SIGKILL)
    return outcome(stack, job_id, time.monotonic(), offline, by_filename)


def kill_worker(stack: Stack, images: list[bytes], offline: list[int]) -> dict:
    job_id = submit(stack, images)
    mid_job(stack, job_id, len(images))
    fault = time.monotonic()
    stack.kill_worker()
    stack.worker = stack.start_worker()
    restarted = time.monotonic()
    result = outcome(stack, job_id, fault, offline, by_filename)
    result["new_worker_start_s"] = round(restarted - fault, 1)
    result["new_worker_to_end_s"] = round(result["fault_to_end_s"] - (restarted - fault), 1)
    return result


def kill_redis(stack: Stack, images: list[bytes], offline: list[int]) -> dict:
    job_id = submit(stack, images)
    mid_job(stack, job_id, len(images))
    fault = time.monotonic()
    stack.redis.process.kill()
    stack.redis.process.wait()
    answers_while_down: Counter[str] = Counter()
    slowest = 0.0
    while time.monotonic() - fault < 5:  # the outage: what does the API answer?
        for method, path in (("GET", f"/v1/jobs/{job_id}"), ("GET", "/v1/jobs")):
            start = time.monotonic()
            try:
                status = str(httpx.request(method, f"{stack.url}{path}", headers=AUTH,
                                           timeout=10).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            slowest = max(slowest, time.monotonic() - start)
            answers_while_down[status] += 1
        time.sleep(0.1)
    stack.redis = EmbeddedRedis(stack.redis.data_dir, port=stack.redis.port).start()
    # A worker must outlive its broker's restart; one that did not is started again, as its
    # supervisor would, so that the job still ends and the run says what happened.
    worker_survived = stack.worker.poll() is None
    if not worker_survived:
        stack.worker = stack.start_worker()
    result = outcome(stack, job_id, fault, offline, by_filename)
    result["worker_survived"] = worker_survived
    result["api_answers_while_down"] = dict(answers_while_down)
    result["slowest_answer_while_down_s"] = round(slowest, 2)
    return result


def kill_api(stack: Stack, images: list[bytes], offline: list[int]) -> dict:
    body = stored_zip(numbered_pngs(images))
    key = f"chaos-{uuid.uuid4().hex[:6]}"
    client = redis.Redis.from_url(stack.redis.url)

    def post() -> httpx.Response:
        return httpx.post(f"{stack.url}/v1/jobs", files={"archive": ("a.zip", body)},
                          headers={**AUTH, "Idempotency-Key": key}, timeout=300)

    threading.Thread(target=lambda: _quietly(post), daemon=True).start()
    (partial,) = wait(lambda: client.zrange(keys.UPLOADING_KEY, 0, -1), 120, every_s=0.002)
    stack.api.kill()  # SIGKILL mid-upload
    stack.api.wait()
    fault = time.monotonic()
    partial = partial.decode()
    sealed_at_kill = client.hget(keys.job_key(partial), "sealed") == b"1"
    stack.api = stack.start_api()
    retries: Counter[int] = Counter()
    while (retry := post()).status_code == 409:
        retries[409] += 1
        time.sleep(float(retry.headers.get("Retry-After", "1")) / 10)
    retries[retry.status_code] += 1
    answered = time.monotonic() - fault
    result = outcome(stack, retry.json()["id"], fault, offline, by_filename)
    old = job_status(stack, partial)
    result |= {"sealed_at_kill": sealed_at_kill, "retry_answers": dict(retries),
               "retry_answered_after_s": round(answered, 1),
               "partial_job": {"status": old["status"], "end_reason": old["end_reason"],
                               "total_written": old["progress"]["total"]}}
    return result


def hostile_manifest(stack: Stack, images: list[bytes], offline: list[int]) -> dict:
    host = HostileServer(images[0])
    try:
        bad = hostile_urls(host.url)
        good = len(images) - len(bad)
        rows = [(f"sku-{i:05d}", f"{host.url}/ok.png") for i in range(good)]
        rows += list(bad.items())
        manifest = "item_id,url\n" + "".join(f"{item},{url}\n" for item, url in rows)
        response = httpx.post(f"{stack.url}/v1/jobs", headers=AUTH, timeout=120,
                              files={"manifest": ("m.csv", manifest.encode())})
        response.raise_for_status()
        fault = time.monotonic()  # the hostile items are there from the start
        result = outcome(stack, response.json()["id"], fault, [offline[0]] * len(rows),
                         lambda item: 0)
    finally:
        host.close()
    result["hostile_items"] = len(bad)
    return result


def submit(stack: Stack, images: list[bytes]) -> str:
    body = stored_zip(numbered_pngs(images))
    response = httpx.post(f"{stack.url}/v1/jobs", files={"archive": ("a.zip", body)},
                          headers=AUTH, timeout=300)
    response.raise_for_status()
    return response.json()["id"]


def _quietly(call: Callable[[], object]) -> None:
    try:
        call()
    except httpx.HTTPError:
        pass  # its server was killed under it


Scenario = Callable[[Stack, list[bytes], list[int]], dict]
SCENARIOS: dict[str, Scenario] = {"kill-worker-child": kill_child, "kill-whole-worker": kill_worker,
             "kill-redis": kill_redis, "kill-api-mid-upload": kill_api,
             "hostile-manifest": hostile_manifest}


@contextmanager
def fresh_stack(tree: Path | None = None):
    with tempfile.TemporaryDirectory(prefix="tagger-chaos-") as tmp:
        stack = Stack(Path(tmp), tree)
        try:
            yield stack
        finally:
            stack.close()


SETTINGS = {"chunk_lease_s": 60, "reaper_interval_s": 5, "upload_stall_s": 30,
            "fetch_deadline_s": 30, "worker": "prefork, 2 processes"}


def jobs_and_labels(data_dir: Path, images: int) -> tuple[list[bytes], list[int]]:
    from core.predictor import Predictor

    pngs = as_pngs(load_fashion_mnist(data_dir, "test").images[:images])
    return pngs, [p.label_index for p in Predictor.default(device="cpu").predict_images(pngs)]


def chosen(only: list[str] | None) -> dict[str, Scenario]:
    return {name: s for name, s in SCENARIOS.items() if not only or name in only}


def run(data_dir: Path, images: int = 10_000, only: list[str] | None = None) -> dict:
    pngs, offline = jobs_and_labels(data_dir, images)
    results = {}
    for name, scenario in chosen(only).items():
        with fresh_stack() as stack:
            results[name] = scenario(stack, pngs, offline)
        print(name, json.dumps(results[name]), flush=True)
    return {"images_per_job": images, "settings": SETTINGS, "scenarios": results}


def run_ab(data_dir: Path, baseline_ref: str, rounds: int, images: int = 10_000,
           only: list[str] | None = None) -> dict:
    """The scenarios on another commit's code and on this checkout's, alternately, `rounds`
    times each: recovery times move with the machine and with where the fault lands, so
    only rounds run side by side compare."""
    from benchmarks.ab import checkout, remove_checkout, short_ref

    pngs, offline = jobs_and_labels(data_dir, images)
    scenarios = chosen(only)
    runs: dict[str, dict[str, list[dict]]] = {
        name: {"baseline": [], "current": []} for name in scenarios}
    with tempfile.TemporaryDirectory() as tmp:
        tree = checkout(baseline_ref, Path(tmp), "baseline")
        try:
            for _ in range(rounds):
                for name, scenario in scenarios.items():
                    for side, code in (("baseline", tree), ("current", None)):
                        with fresh_stack(code) as stack:
                            runs[name][side].append(scenario(stack, pngs, offline))
                        print(side, name, json.dumps(runs[name][side][-1]), flush=True)
        finally:
            remove_checkout(tree)
    return {"baseline_ref": baseline_ref, "current_ref": short_ref("HEAD"), "rounds": rounds,
            "images_per_job": images, "settings": SETTINGS, "scenarios": runs}
