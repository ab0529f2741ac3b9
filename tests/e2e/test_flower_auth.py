"""Flower as the Dockerfile's `flower` target starts it: never without FLOWER_BASIC_AUTH, and
with it every page asks for the password except /healthcheck (what compose probes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli.redis_server import free_port
from tests.test_deploy import dockerfile_stages

pytest.importorskip("flower", reason="flower is not installed (pip install -e '.[dev]')")


def flower_command(port: int) -> list[str]:
    """The image's CMD (exec form: a JSON list), on a free port instead of 5555."""
    command = json.loads(dockerfile_stages()["flower"]["CMD"])
    return [part.replace("--port=5555", f"--port={port} --address=127.0.0.1")
            for part in command]


def env_for(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TAGGER_", "FLOWER_"))} | {"TAGGER_REDIS_URL": redis_url}
    # The image's `celery` is on PATH; here it is the one beside this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env | extra


def test_the_image_refuses_to_start_flower_without_a_password(redis_url):
    result = subprocess.run(flower_command(free_port()), env=env_for(redis_url),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "set FLOWER_BASIC_AUTH=user:password" in result.stderr


def test_flower_asks_for_the_password_except_on_its_healthcheck(redis_url, tmp_path):
    port = free_port()
    with (tmp_path / "flower.log").open("wb") as log:
        flower = subprocess.Popen(flower_command(port), stdout=log, stderr=subprocess.STDOUT,
                                  env=env_for(redis_url, FLOWER_BASIC_AUTH="ops:s3cret"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert flower.poll() is None, (tmp_path / "flower.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "flower.log").read_text()
            try:
                health = httpx.get(f"{base}/healthcheck", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert health.status_code == 200 and health.text == "OK"
        assert httpx.get(f"{base}/", timeout=5).status_code == 401
        assert httpx.get(f"{base}/", auth=("ops", "wrong"), timeout=5).status_code == 401
        assert httpx.get(f"{base}/workers", auth=("ops", "s3cret"), timeout=10
                         ).status_code == 200
    finally:
        flower.terminate()
        flower.wait(30)
