"""Service commands: `up` (the whole stack), `api` and `worker` (the parts, separately).

`up` starts, as child processes: an embedded Redis (when TAGGER_REDIS_URL is unset; its
append-only file lives in <data-dir>/redis, so the next `up` finds its jobs again, and its
`maxmemory` is TAGGER_REDIS_MAXMEMORY), an inference worker (interactive, bulk, webhooks; one
process per core, at a lower CPU priority), an interactive worker (single images only, one
process), a training worker (the training queue, one job at a time, so a long run never
delays tagging) and the API.

Why the interactive worker: Celery never preempts a task, so with every inference process in
the middle of a bulk chunk (a flood of bulk jobs) a single image would wait for a chunk to
end, ~0.3-0.8 s. One process that takes only single images answers them at once; the bulk
processes, at `nice` +5, leave the API, Redis and that process the CPU they need on a shared
machine (`python -m benchmarks abuse`: the 32-client p99 under a bulk flood).

Ctrl-C or SIGTERM stops them in reverse order: API, workers (finishing their tasks), Redis
(flushing its file); a child that hangs is killed after a timeout.

`api` and `worker` start nothing else: they use TAGGER_REDIS_URL, or redis://127.0.0.1:6379/0
when it is unset.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.settings import Settings, get_settings
from worker import names

console = Console(stderr=True)

DEFAULT_QUEUES = ",".join(names.ALL_QUEUES)  # `fashion-tagger worker`: one worker for all
INFERENCE_QUEUES = ",".join(names.INFERENCE_QUEUES)
TRAINING_QUEUES = ",".join(names.TRAINING_QUEUES)
# Workers: let chunks finish. A training run that does not stop in time is killed; its job
# restarts cleanly on the next start (or is marked failed), see store.training.
STOP_TIMEOUT_S = {"api": 10.0, "worker": 60.0, "interactive-worker": 30.0,
                  "training-worker": 30.0, "redis": 15.0}
BULK_NICE = 5  # the inference worker's CPU priority below the API's (and interactive's)

HostOpt = Annotated[str, typer.Option(help="Address to bind (loopback by default)")]
PortOpt = Annotated[int, typer.Option(min=1, max=65535)]
PublicOpt = Annotated[bool, typer.Option(
    "--allow-public", help="Bind a non-loopback address without API keys"
                           " (TAGGER_ALLOW_PUBLIC_BIND)")]
PoolOpt = Annotated[str | None, typer.Option(
    help="prefork | solo | threads (TAGGER_WORKER_POOL, default prefork)")]


def check_bind(host: str, allow_public: bool, settings: Settings) -> None:
    """An open server (no API keys) stays on loopback unless explicitly allowed."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not settings.api_keys.strip() and not (
            allow_public or settings.allow_public_bind):
        raise typer.BadParameter(
            f"refusing to bind {host} with no TAGGER_API_KEYS (anyone could use it): set keys,"
            " or pass --allow-public", param_hint="--host")


def _die_with_parent() -> None:
    # Linux: a child gets SIGTERM if `up` itself dies (even by SIGKILL): no orphaned stack.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: children may outlive a killed parent


def _die_with_parent_niced() -> None:
    _die_with_parent()
    os.nice(BULK_NICE)


def worker_argv(queues: str, concurrency: int, pool: str | None,
                name: str | None = None) -> list[str]:
    argv = ["worker", "-Q", queues, "--loglevel", "INFO"]
    if name:
        argv += ["-n", name]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if pool:
        argv += ["--pool", pool]
    return argv


def up(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    data_dir: Annotated[Path, typer.Option(help="Redis files, model caches")] = Path("var"),
    workers: Annotated[int, typer.Option(
        min=0, help="Worker processes (0 = one per core, TAGGER_WORKER_CONCURRENCY)")] = 0,
    pool: PoolOpt = None,
    allow_public: PublicOpt = False,
    interactive_workers: Annotated[int, typer.Option(
        min=0, help="Processes that take single images only (0: none)")] = 1,
) -> None:
    """Run the whole service: embedded Redis (unless TAGGER_REDIS_URL), an inference worker,
    an interactive worker, a training worker, the API."""
    from cli.redis_server import EmbeddedRedis

    settings = get_settings()
    check_bind(host, allow_public, settings)
    env = {**os.environ, "TAGGER_DATA_DIR": str(data_dir.resolve())}
    children: list[tuple[str, subprocess.Popen]] = []
    spawn = {"start_new_session": True, "preexec_fn": _die_with_parent}
    redis_server = None
    stopping = False

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        if not settings.redis_url:
            redis_server = EmbeddedRedis(data_dir / "redis",
                                         maxmemory=settings.redis_maxmemory).start(**spawn)
            env["TAGGER_REDIS_URL"] = redis_server.url
            console.print(f"embedded Redis on {redis_server.url} (data in {data_dir}/redis,"
                          f" maxmemory {settings.redis_maxmemory / 2**30:.1f} GiB)")
        celery = [sys.executable, "-m", "celery", "-A", "worker.app"]
        children.append(("worker", subprocess.Popen(
            celery + worker_argv(INFERENCE_QUEUES, workers, pool, "inference@%h"), env=env,
            **(spawn | {"preexec_fn": _die_with_parent_niced}))))
        if interactive_workers:
            children.append(("interactive-worker", subprocess.Popen(
                celery + worker_argv(names.INTERACTIVE_QUEUE, interactive_workers, pool,
                                     "interactive@%h"), env=env, **spawn)))
        # prefork with one child: training runs in a child (the parent stays torch-free and
        # enforces the time limit, which the solo pool cannot), one job at a time.
        children.append(("training-worker", subprocess.Popen(
            celery + worker_argv(TRAINING_QUEUES, 1, "prefork", "training@%h"), env=env,
            **spawn)))
        children.append(("api", subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", host, "--port",
             str(port)], env=env, **spawn)))
        console.print(f"[green]fashion-tagger[/] on http://{host}:{port} (docs: /docs);"
                      " Ctrl-C stops it")
        while all(child.poll() is None for _, child in children):
            time.sleep(0.5)
        dead = [name for name, child in children if child.poll() is not None]
        console.print(f"[red]{', '.join(dead)} exited[/]: stopping the rest")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        stopping = True
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut cleanup
        for name, child in reversed(children):  # API first, then the workers
            _stop(name, child)
        if redis_server is not None:
            redis_server.stop(STOP_TIMEOUT_S["redis"])
        if stopping:
            console.print("stopped")


def _stop(name: str, child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
    try:
        child.wait(STOP_TIMEOUT_S[name])
    except subprocess.TimeoutExpired:
        console.print(f"{name} did not stop in {STOP_TIMEOUT_S[name]:.0f} s: killing it")
        child.kill()
        child.wait()


def api(host: HostOpt = "127.0.0.1", port: PortOpt = 8000, allow_public: PublicOpt = False
        ) -> None:
    """Run the API only (needs a Redis: TAGGER_REDIS_URL, default redis://127.0.0.1:6379/0)."""
    import uvicorn

    check_bind(host, allow_public, get_settings())
    uvicorn.run("api.main:app", host=host, port=port)


def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues")] = DEFAULT_QUEUES,
    concurrency: Annotated[int, typer.Option(
        min=0, help="Processes/threads (0 = TAGGER_WORKER_CONCURRENCY or one per core)")] = 0,
    pool: PoolOpt = None,
) -> None:
    """Run a Celery worker only (TAGGER_REDIS_URL, default redis://127.0.0.1:6379/0).

    For a GPU use `--pool solo` (or prefork with --concurrency 1): the model and CUDA are
    only ever initialised in the process that runs tasks."""
    from worker.app import app as celery_app

    celery_app.worker_main(worker_argv(queues, concurrency, pool))


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(api)
    app.command()(worker)
