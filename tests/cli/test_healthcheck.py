"""`python -m cli.healthcheck`: the container health checks of docker-compose.yml and the
Kubernetes probes, against a real Redis and a real HTTP server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import redis

from cli import healthcheck
from cli.redis_server import free_port
from store.workers import HEARTBEAT_TTL_S, heartbeat


def test_a_fresh_heartbeat_is_healthy_a_stale_or_missing_one_is_not(redis_url):
    client = redis.Redis.from_url(redis_url)
    heartbeat(client, "inference@box-1")
    assert healthcheck.check_worker("inference@box-1", redis_url) is None
    later = time.time() + HEARTBEAT_TTL_S + 5
    assert "s ago (limit 30 s)" in healthcheck.check_worker("inference@box-1", redis_url, later)
    assert healthcheck.check_worker("inference@box-2", redis_url) == (
        "no heartbeat from inference@box-2 in Redis")


def test_redis_away_is_unhealthy():
    problem = healthcheck.check_worker("w@h", f"redis://127.0.0.1:{free_port()}/0")
    assert problem.startswith("Redis unreachable")


def test_the_node_name_expands_like_celerys():
    assert healthcheck.node_name("inference@%h") == f"inference@{socket.gethostname()}"


def test_http(local_server):
    local_server.routes["/healthz"] = (200, {}, b'{"status": "ok"}')
    assert healthcheck.check_http(f"{local_server.url}/healthz") is None
    assert healthcheck.check_http(f"{local_server.url}/nope") == (
        f"HTTP 404 from {local_server.url}/nope")
    assert "no answer from" in healthcheck.check_http(f"http://127.0.0.1:{free_port()}/")


@pytest.mark.parametrize("with_heartbeat, code", [(True, 0), (False, 1)])
def test_the_command_exit_code(redis_url, with_heartbeat, code):
    node = f"inference@{socket.gethostname()}"
    if with_heartbeat:
        heartbeat(redis.Redis.from_url(redis_url), node)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGGER_")} | {
        "TAGGER_REDIS_URL": redis_url}
    result = subprocess.run([sys.executable, "-m", "cli.healthcheck", "worker", "inference@%h"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == code, result.stderr
    assert (node in result.stdout) if code == 0 else ("unhealthy: no heartbeat" in result.stderr)


def test_usage_is_exit_code_2():
    assert healthcheck.main(["worker"]) == 2
    assert healthcheck.main(["ping", "x"]) == 2
