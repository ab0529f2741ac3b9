"""Container health checks (docker-compose.yml, Kubernetes probes), stdlib and redis only, so
every image can run them (the API, flower and both kinds of worker):

    python -m cli.healthcheck http http://127.0.0.1:8000/healthz
    python -m cli.healthcheck worker inference@%h      # %h: this host's name, as Celery's -n

A worker is healthy when its own heartbeat (worker.heartbeat, every 10 s) is in Redis and
younger than store.workers.HEARTBEAT_TTL_S: the same evidence GET /readyz counts, and much
cheaper than `celery inspect ping`, which broadcasts to every worker. Exit code 0 healthy,
1 not, with one line saying why.
"""

from __future__ import annotations

import socket
import sys
import time
import urllib.error
import urllib.request

USAGE = ("usage: python -m cli.healthcheck http URL\n"
         "       python -m cli.healthcheck worker NODENAME   (%h = this host's name)")


def check_http(url: str, timeout_s: float = 3.0) -> str | None:
    """None when `url` answers 2xx, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} from {url}"
    except (urllib.error.URLError, OSError) as exc:
        return f"no answer from {url}: {exc}"


def node_name(pattern: str) -> str:
    """Celery's `-n` expansion of %h (the full host name), so one compose line fits every
    replica of a scaled service."""
    return pattern.replace("%h", socket.gethostname())


def check_worker(node: str, redis_url: str, now: float | None = None) -> str | None:
    """None when `node` stamped a heartbeat within HEARTBEAT_TTL_S, else why not."""
    import redis  # here: the http check needs nothing but the standard library

    from store.keys import WORKERS_KEY
    from store.workers import HEARTBEAT_TTL_S

    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=3, socket_connect_timeout=3)
        stamp = client.zscore(WORKERS_KEY, node)
    except redis.RedisError as exc:
        return f"Redis unreachable: {exc}"
    if stamp is None:
        return f"no heartbeat from {node} in Redis"
    age = (time.time() if now is None else now) - stamp
    if age > HEARTBEAT_TTL_S:
        return f"last heartbeat from {node} {age:.0f} s ago (limit {HEARTBEAT_TTL_S} s)"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("http", "worker"):
        print(USAGE, file=sys.stderr)
        return 2
    kind, target = argv
    if kind == "http":
        problem = check_http(target)
    else:
        from core.settings import get_settings
        from store.connection import redis_url

        target = node_name(target)
        problem = check_worker(target, redis_url(get_settings()))
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    print(f"healthy: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
