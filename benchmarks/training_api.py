"""Training through the service: a full recipe submitted to POST /v1/training-jobs, run by the
training worker of `fashion-tagger up`, then its model evaluated on the test split exactly as
the CLI benchmark evaluates `fashion-tagger train` (benchmarks/training.py); and how soon the
next job sees a newly activated version.

The test split is used only for the final evaluation, after training has finished.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import RESULTS_DIR, Timer, fashion_tagger_cmd
from benchmarks.service import TERMINAL, running_stack
from cli.redis_server import EmbeddedRedis
from core.data import load_fashion_mnist

POLL_S = 5


def follow(client: httpx.Client, job_id: str, poll_s: float = POLL_S) -> dict:
    while (job := client.get(f"/v1/training-jobs/{job_id}").json())["status"] not in TERMINAL:
        time.sleep(poll_s)
    return job


def evaluate_on_test(model: Path, data_dir: Path | None, out: Path) -> float:
    cmd = [*fashion_tagger_cmd(), "evaluate", "--model", str(model), "--split", "test",
           "--out", str(out)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text())["accuracy"]


def cli_reference(recipe: str, seed: int) -> dict | None:
    """The CLI benchmark's run of the same recipe, when it was recorded with the same seed."""
    path = RESULTS_DIR / f"training-{recipe}.json"
    if not path.exists():
        return None
    cli = json.loads(path.read_text())
    return cli if cli.get("seed", 0) == seed else None  # the recipes' seed is 0


def run_training_job(recipe: str, seed: int, data_dir: Path | None, keep: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        out = (keep or tmp_path) / f"api-{recipe}"
        out.mkdir(parents=True, exist_ok=True)
        with EmbeddedRedis(tmp_path / "redis") as server, \
                running_stack(server.url, tmp_path, data_dir) as base, \
                httpx.Client(base_url=base, timeout=120) as client:
            request = {"recipe": recipe, "seed": seed, "activate": "never"}
            with Timer() as t:
                created = client.post("/v1/training-jobs", json=request)
                created.raise_for_status()
                job = follow(client, created.json()["id"])
            if job["status"] != "succeeded":
                raise RuntimeError(f"training job ended {job['status']}: {job['error']}")
            model = out / "model.safetensors"
            model.write_bytes(client.get(f"/v1/models/{job['model_version']}/download").content)
    test_accuracy = evaluate_on_test(model, data_dir, out / "eval")
    cli = cli_reference(recipe, seed)
    return {
        "recipe": recipe,
        "seed": seed,
        "request": job["request"],
        "wall_s": round(t.seconds, 1),  # submit -> succeeded, as a client sees it
        "train_elapsed_s": job["elapsed_s"],
        "epochs": len(job["history"]),
        "val_accuracy": job["history"][-1]["val_accuracy"],
        "test_accuracy": test_accuracy,
        "cli": None if cli is None else {
            "command": cli["command"], "test_accuracy": cli["test_accuracy"],
            "wall_s": cli["wall_s"], "machine": cli["machine"]},
        "api_minus_cli_points": None if cli is None else round(
            100 * (test_accuracy - cli["test_accuracy"]), 2),
    }


def switch_latency(data_dir: Path | None, rounds: int = 20) -> dict:
    """A quick training job makes a second version; then, alternately activating it and the
    first, the time from the activate answer until a classify job reports that version."""
    image = _one_test_png(data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with EmbeddedRedis(tmp_path / "redis") as server, \
                running_stack(server.url, tmp_path, data_dir) as base, \
                httpx.Client(base_url=base, timeout=120) as client:
            first = client.get("/v1/models").json()["active"]
            created = client.post("/v1/training-jobs", json={
                "max_train_items": 300, "epochs": 1, "activate": "never"}).json()
            second = follow(client, created["id"], poll_s=0.5)["model_version"]
            seconds, first_job_hits = [], 0
            for i in range(rounds):
                target = (second, first)[i % 2]
                client.post(f"/v1/models/{target}/activate").raise_for_status()
                start, attempts = time.perf_counter(), 0
                while True:
                    attempts += 1
                    answer = client.post("/v1/classify", params={"wait": 10},
                                         files={"file": ("x.png", image, "image/png")}).json()
                    if answer["result"]["model_version"] == target:
                        break
                seconds.append(time.perf_counter() - start)
                first_job_hits += attempts == 1
    return {"rounds": rounds, "first_job_after_activate_used_it": first_job_hits,
            "switch_p50_ms": round(1000 * statistics.median(seconds), 1),
            "switch_max_ms": round(1000 * max(seconds), 1)}


def _one_test_png(data_dir: Path | None) -> bytes:
    from benchmarks.service import as_pngs
    from core.settings import get_settings

    images = load_fashion_mnist(data_dir or get_settings().fashion_mnist_dir, "test").images
    return as_pngs(images[:1])[0]
