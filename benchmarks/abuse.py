"""`python -m benchmarks abuse`: one tenant's flood and another's hostile bodies against 32
well-behaved clients, on a real stack (embedded Redis with its memory budget,
`fashion-tagger up` with API keys and quotas), all on this machine.

1. quiet: 32 clients of tenant `shop` send single images (`POST /v1/classify?wait=10`) for
   60 s (`--phase-s`);
2. flood: the same again while tenant `flood` (A) uploads a 100,000-item zip (`--big-job-items`)
   and then keeps
   sending bulk jobs of product photos, tenant `small` (B) submits a small job every few
   seconds (how soon does it start?), and tenant `hostile` (C) and no tenant at all send
   hostile bodies: 500 MB declared and unauthenticated (JSON and multipart), past-the-cap
   declarations with a key, a tar.gz of millions of entries, a zip bomb, a zip of 300,000
   entries, oversize parts.
Meanwhile the API's RSS and Redis's used memory are sampled. Targets (issue 13): the
well-behaved clients see no error but documented 429s, their p99 under the flood within 2x of
the quiet one; hostile bodies answered 401/413/422 within 1 s; API RSS growth < 100 MB; Redis
under its budget; B's small job starts within 5 s while A's 100k job is queued.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import redis

from benchmarks.abuse_bodies import (
    MB,
    Answer,
    KeepAlive,
    multipart,
    product_photos,
    send,
    send_blocking,
    tar_of_directories,
    zip_bomb,
    zip_of_empty_entries,
)
from benchmarks.common import stored_zip
from benchmarks.service import as_pngs, percentile, running_stack
from cli.redis_server import EmbeddedRedis
from core.data import load_fashion_mnist

CLIENTS = 32
REDIS_BUDGET = 1024 * MB  # TAGGER_REDIS_MAXMEMORY for this run
KEYS = {"shop": "shop-key", "flood": "flood-key", "small": "small-key",
        "hostile": "hostile-key"}
# `shop` is a big customer: its 32 clients send ~300 requests/s, past the default 100/s.
# Everyone else has the defaults (TAGGER_QUOTA_*).
QUOTAS = {"shop": {"requests": "2000/second"}}
ENV = {"TAGGER_API_KEYS": ",".join(f"{key}:{tenant}" for tenant, key in KEYS.items()),
       "TAGGER_TENANT_QUOTAS": json.dumps(QUOTAS), "TAGGER_REDIS_MAXMEMORY": str(REDIS_BUDGET),
       "TAGGER_LOG_FORMAT": "text"}


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


class Sampler:
    """The API process's RSS and Redis's used memory, every `every_s`, in a thread."""

    def __init__(self, port: int, redis_url: str, every_s: float = 0.5) -> None:
        self.api = next(p for p in psutil.process_iter(["cmdline"])
                        if "uvicorn" in " ".join(p.info["cmdline"] or [])
                        and str(port) in (p.info["cmdline"] or []))
        self.redis = redis.Redis.from_url(redis_url)
        self.every_s = every_s
        self.rss: list[int] = []
        self.used: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.rss.append(self.api.memory_info().rss)
            self.used.append(int(self.redis.info("memory")["used_memory"]))
            self._stop.wait(self.every_s)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def well_behaved(base: str, images: list[bytes], seconds: float) -> dict:
    """CLIENTS connections of `shop`, each sending one image after another until `seconds`
    pass. Latency of every 200; any other status counted (429 is documented, the rest errors)."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    bodies = [multipart([("file", "x.png", image)]) for image in images]

    async def client(c: int) -> None:
        connection = KeepAlive(base)
        n = 0
        while time.monotonic() < deadline:
            content_type, body = bodies[(c * 997 + n) % len(bodies)]
            n += 1
            try:
                answer = await connection.request(
                    "POST", "/v1/classify?wait=10",
                    auth("shop") | {"Content-Type": content_type}, body)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            statuses[answer.status] += 1
            if answer.status == 200:
                latencies.append(answer.seconds * 1000)
            elif answer.status == 429:
                await asyncio.sleep(float(answer.headers.get("retry-after", 1)))
            else:
                errors.append(f"{answer.status}: {answer.body[:200]!r}")
        connection.close()

    await asyncio.gather(*(client(c) for c in range(CLIENTS)))
    return {"requests": sum(statuses.values()), "statuses": dict(statuses),
            "errors": len(errors), "error_samples": errors[:5],
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "requests_per_s": round(sum(statuses.values()) / seconds)}


async def flood(base: str, big: bytes, photo_job: bytes, stop: asyncio.Event,
                big_job: asyncio.Future) -> dict:
    """Tenant A: the 100k-item zip, then photo jobs back to back until `stop`; a refusal
    (429/503) is retried after a short pause, as a careless client would."""
    content_type, body = multipart([("archive", "catalogue.zip", big)])
    answer = await send(base, "POST", "/v1/jobs", auth("flood") | {
        "Content-Type": content_type}, body, timeout_s=600)
    big_job.set_result((answer, time.monotonic()))
    statuses: Counter[str] = Counter()
    content_type, body = multipart([("archive", "photos.zip", photo_job)])
    while not stop.is_set():
        try:
            answer = await send(base, "POST", "/v1/jobs", auth("flood") | {
                "Content-Type": content_type}, body, timeout_s=120)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            statuses[type(exc).__name__] += 1
            continue
        code = answer.json().get("error", {}).get("code", "")
        statuses[f"{answer.status} {code}".strip()] += 1
        if answer.status != 202:
            await asyncio.sleep(0.2)
    return {"photo_jobs": dict(statuses)}


async def small_job_starts(base: str, job_zip: bytes, probes: int, every_s: float
                           ) -> list[dict]:
    """Tenant B: a small job every `every_s`; how long until a worker starts it."""
    content_type, body = multipart([("archive", "few.zip", job_zip)])
    found = []
    for _ in range(probes):
        try:
            answer = await send(base, "POST", "/v1/jobs", auth("small") | {
                "Content-Type": content_type}, body, timeout_s=60)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            found.append({"status": type(exc).__name__, "start_s": None})
            continue
        submitted = time.monotonic()
        if answer.status != 202:
            found.append({"status": answer.status, "start_s": None})
            continue
        job_id = answer.json()["id"]
        while True:
            job = (await send(base, "GET", f"/v1/jobs/{job_id}", auth("small"))).json()
            if job["started_at"] or time.monotonic() - submitted > 60:
                break
            await asyncio.sleep(0.05)
        found.append({"status": 202, "start_s": round(time.monotonic() - submitted, 2)
                      if job["started_at"] else None})
        await asyncio.sleep(every_s)
    return found


def hostile_requests(photo: bytes) -> list[tuple[str, str, str, dict, bytes, int | None]]:
    """(name, method, path, headers, body sent, declared length) of each hostile request."""
    json_head = {"Content-Type": "application/json"}
    form = "multipart/form-data; boundary=x"
    part = b"--x\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"a.zip\"\r\n\r\n"
    big_part = ("multipart/form-data; boundary=x",
                part + b"\0" * (30 * MB))
    tar_type, tar_body = multipart([("archive", "dirs.tar.gz", tar_of_directories(2_000_000))])
    bomb_type, bomb_body = multipart([("archive", "bomb.zip", zip_bomb())])
    many_type, many_body = multipart([("archive", "many.zip", zip_of_empty_entries(300_000))])
    files_type, files_body = multipart([("files", "huge.bmp", b"\0" * (30 * MB)),
                                        ("files", "ok.jpg", photo)])
    first_mb = b"[" * MB
    return [
        ("unauthenticated JSON, 500 MB declared", "POST", "/v1/training-jobs", json_head,
         first_mb, 500 * MB),
        ("unauthenticated multipart, 500 MB declared", "POST", "/v1/jobs",
         {"Content-Type": form}, part + first_mb, 500 * MB),
        ("JSON with a key, 500 MB declared", "POST", "/v1/training-jobs",
         auth("hostile") | json_head, first_mb, 500 * MB),
        ("multipart with a key, 1 GB declared", "POST", "/v1/jobs",
         auth("hostile") | {"Content-Type": form}, part + first_mb, 1024 * MB),
        ("classify, a 30 MB part", "POST", "/v1/classify",
         auth("hostile") | {"Content-Type": big_part[0]}, big_part[1][:MB], len(big_part[1])),
        ("bulk files, a 30 MB part (sent whole)", "POST", "/v1/jobs",
         auth("hostile") | {"Content-Type": files_type}, files_body, None),
        ("tar.gz of 2,000,000 entries", "POST", "/v1/jobs",
         auth("hostile") | {"Content-Type": tar_type}, tar_body, None),
        ("zip bomb (5 x 500 MB of zeros)", "POST", "/v1/jobs",
         auth("hostile") | {"Content-Type": bomb_type}, bomb_body, None),
        ("zip of 300,000 entries", "POST", "/v1/jobs",
         auth("hostile") | {"Content-Type": many_type}, many_body, None),
    ]


async def hostile(base: str, requests: list, rounds: int, every_s: float) -> list[dict]:
    rows: dict[str, dict] = {}
    for _ in range(rounds):
        for name, method, path, headers, body, declared in requests:
            row = rows.setdefault(name, {"request": name, "body_sent_bytes": len(body),
                                         "declared_bytes": declared or len(body),
                                         "statuses": [], "codes": [], "seconds": []})
            started = time.perf_counter()
            try:
                answer: Answer = await asyncio.to_thread(send_blocking, base, method, path,
                                                         headers, body, declared, 30)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                row["statuses"].append(0)  # no answer: counted as a miss
                row["codes"].append(type(exc).__name__)
                row["seconds"].append(round(time.perf_counter() - started, 3))
                continue
            row["statuses"].append(answer.status)
            row["codes"].append(answer.json().get("error", {}).get("code"))
            row["seconds"].append(round(answer.seconds, 3))
        await asyncio.sleep(every_s)
    for row in rows.values():
        row["max_s"] = max(row["seconds"])
    return list(rows.values())


async def flood_phase(base: str, singles: list[bytes], big: bytes, photo_job: bytes,
                      small_zip: bytes, requests: list, seconds: float) -> dict:
    stop = asyncio.Event()
    big_job: asyncio.Future = asyncio.get_running_loop().create_future()
    flooding = asyncio.create_task(flood(base, big, photo_job, stop, big_job))
    answer, accepted_at = await big_job
    assert answer.status == 202, answer.body[:300]
    upload_s = answer.seconds
    big_id = answer.json()["id"]
    clients = asyncio.create_task(well_behaved(base, singles, seconds))
    probes = asyncio.create_task(small_job_starts(base, small_zip, probes=6,
                                                  every_s=seconds / 8))
    hostiles = asyncio.create_task(hostile(base, requests, rounds=3, every_s=seconds / 4))
    shop = await clients
    b_starts, c_rows = await probes, await hostiles
    stop.set()
    a = await flooding
    big_now = (await send(base, "GET", f"/v1/jobs/{big_id}", auth("flood"))).json()
    return {"shop": shop, "flood": a | {"big_job_upload_s": round(upload_s, 1),
                                        "big_job_progress_at_end": big_now["progress"],
                                        "big_job_status_at_end": big_now["status"],
                                        "big_job_id": big_id},
            "small_job_starts": b_starts, "hostile": c_rows}


async def cancel_flood(base: str) -> None:
    jobs = (await send(base, "GET", "/v1/jobs?limit=100", auth("flood"))).json()["items"]
    for job in jobs:
        if job["status"] in ("queued", "running"):
            await send(base, "DELETE", f"/v1/jobs/{job['id']}", auth("flood"))


def run(data_dir: Path, phase_s: float = 60, big_job_items: int = 100_000,
        keep: Path | None = None) -> dict:
    """`keep`: run the stack in this folder (its logs stay there), not a temporary one."""
    images = load_fashion_mnist(data_dir, "test").images
    singles = as_pngs(images[:2000])
    pngs = as_pngs(images)
    big = stored_zip([(f"{i:06d}.png", pngs[i % len(pngs)]) for i in range(big_job_items)])
    photos = product_photos(50)
    photo_job = stored_zip([(f"p{i:04d}.jpg", photos[i % len(photos)]) for i in range(500)])
    small_zip = stored_zip([(f"s{i}.png", pngs[i]) for i in range(16)])
    requests = hostile_requests(photos[0])
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = keep or Path(tmp)
        tmp_path.mkdir(parents=True, exist_ok=True)
        with EmbeddedRedis(tmp_path / "redis", maxmemory=REDIS_BUDGET) as server, \
                running_stack(server.url, tmp_path, env_overrides=ENV) as base:
            port = int(base.rsplit(":", 1)[1])
            asyncio.run(well_behaved(base, singles, 10))  # warm-up: models, connections
            sampler = Sampler(port, server.url).start()
            time.sleep(1)
            rss_start = sampler.rss[-1]
            started = time.monotonic()
            quiet = asyncio.run(well_behaved(base, singles, phase_s))
            flooded = asyncio.run(flood_phase(base, singles, big, photo_job, small_zip,
                                              requests, phase_s))
            asyncio.run(cancel_flood(base))
            time.sleep(2)
            sampler.stop()
            maxmemory = int(redis.Redis.from_url(server.url).config_get("maxmemory")[
                "maxmemory"])
            total_s = time.monotonic() - started
    shop = flooded["shop"]
    starts = [p["start_s"] for p in flooded["small_job_starts"] if p["start_s"] is not None]
    hostile_max = max(row["max_s"] for row in flooded["hostile"])
    hostile_ok = all(set(row["statuses"]) <= {401, 413, 422} for row in flooded["hostile"])
    allowed = {200, 429}
    return {
        "setup": {"clients": CLIENTS, "phase_s": phase_s, "big_job_items": big_job_items,
                  "redis_budget_bytes": REDIS_BUDGET, "quotas": QUOTAS,
                  "photo_job": "500 synthetic 600x800 JPEG product photos (~12 kB)",
                  "measured_s": round(total_s)},
        "quiet": quiet,
        **flooded,
        "api_rss_mb": {"start": round(rss_start / MB, 1), "max": round(max(sampler.rss) / MB, 1),
                       "growth": round((max(sampler.rss) - rss_start) / MB, 1)},
        "redis_used_mb": {"max": round(max(sampler.used) / MB, 1),
                          "budget": round(maxmemory / MB, 1)},
        "targets": {
            "well_behaved_errors_other_than_429": shop["errors"] + sum(
                n for s, n in shop["statuses"].items() if int(s) not in allowed),
            "p99_ratio_flood_over_quiet": round(shop["p99_ms"] / quiet["p99_ms"], 2),
            "hostile_all_401_413_422": hostile_ok,
            "hostile_max_s": hostile_max,
            "api_rss_growth_mb": round((max(sampler.rss) - rss_start) / MB, 1),
            "redis_max_used_over_budget": round(max(sampler.used) / maxmemory, 3),
            "small_job_start_max_s": max(starts) if starts else None,
            "small_job_start_median_s": statistics.median(starts) if starts else None,
        },
    }
