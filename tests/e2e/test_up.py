"""`up` with no TAGGER_REDIS_URL: an embedded Redis, a worker and the API as child processes;
SIGTERM stops them all; a second `up` on the same data dir finds the job again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer

from cli.redis_server import free_port
from cli.stack import check_bind
from core.settings import Settings
from tests.conftest import png_bytes

# The stack commands on their own Typer app: independent of how cli/main.py wires them.
UP = ("import typer; from cli import stack; app = typer.Typer(); stack.register(app); app()")


def start_up(data_dir: Path, port: int, model_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGGER_")}
    env |= {"TAGGER_MODEL_PATH": str(model_path), "TAGGER_TORCH_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", UP, "up", "--port", str(port), "--data-dir", str(data_dir),
         "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(url: str, process: subprocess.Popen, timeout_s: float = 120) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, "`up` exited early"
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} not ready"
        time.sleep(0.3)


def stop_up(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(90) == 0


def test_up_runs_the_stack_on_an_embedded_redis(tmp_path, model_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_up(tmp_path, port, model_path)
    try:
        wait_for(f"{base}/readyz", process)  # Redis up and a worker heartbeat
        deadline = time.monotonic() + 60  # both workers: inference, and training (its own)
        while httpx.get(f"{base}/readyz", timeout=2).json()["workers"] < 2:
            assert time.monotonic() < deadline, "the training worker did not start"
            time.sleep(0.3)
        response = httpx.post(f"{base}/v1/classify?wait=20", timeout=30,
                              files={"file": ("a.png", png_bytes(1), "image/png")})
        assert response.status_code == 200 and response.json()["result"]["status"] == "ok"
        job_id = response.json()["id"]
    finally:
        stop_up(process)
    assert (tmp_path / "redis" / "redis.log").exists()
    with httpx.Client() as client:  # everything it started is gone, the port included
        try:
            client.get(f"{base}/healthz", timeout=1)
            raise AssertionError("the API still answers after SIGTERM")
        except httpx.TransportError:
            pass

    process = start_up(tmp_path, port, model_path)
    try:
        job = wait_for(f"{base}/v1/jobs/{job_id}", process).json()
        assert job["status"] == "succeeded"  # the append-only file kept it
    finally:
        stop_up(process)


def test_an_open_server_is_only_bound_to_loopback_unless_allowed():
    for host in ("127.0.0.1", "localhost", "::1"):
        check_bind(host, False, Settings())
    with pytest.raises(typer.BadParameter, match="--allow-public"):
        check_bind("0.0.0.0", False, Settings())
    check_bind("0.0.0.0", True, Settings())
    check_bind("0.0.0.0", False, Settings(allow_public_bind=True))
    check_bind("0.0.0.0", False, Settings(api_keys="k:t"))  # keys: not an open server
