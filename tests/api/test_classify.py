"""POST /v1/classify waiting without blocking the event loop; the API process stays torch-free."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time

import httpx
import redis

from api.main import create_app
from tests.api.conftest import ALICE
from tests.conftest import png_bytes


def test_the_api_process_never_imports_torch(redis_url):
    code = ("import sys; from fastapi.testclient import TestClient; import api.main;"
            "from core.settings import Settings; from tests.conftest import png_bytes;"
            f"app = api.main.create_app(Settings(redis_url='{redis_url}'));"
            "client = TestClient(app, base_url='http://127.0.0.1').__enter__();"
            "r = client.post('/v1/classify', files={'file': ('a.png', png_bytes(1))});"
            "assert r.status_code == 202, r.text;"
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_waiting_requests_do_not_block_each_other(settings):
    """No worker runs: each request waits its full `wait`, concurrently, while the server
    keeps answering other requests."""
    app = create_app(settings)

    async def scenario() -> tuple[float, list[httpx.Response], float]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                start = time.perf_counter()
                waits = [client.post("/v1/classify?wait=1", headers=ALICE,
                                     files={"file": ("a.png", png_bytes(i), "image/png")})
                         for i in range(4)]
                tasks = [asyncio.ensure_future(w) for w in waits]
                await asyncio.sleep(0.3)
                probe = time.perf_counter()
                assert (await client.get("/healthz")).status_code == 200
                probe = time.perf_counter() - probe
                responses = await asyncio.gather(*tasks)
                return time.perf_counter() - start, responses, probe

    elapsed, responses, probe = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [202] * 4
    assert all(r.json()["result"] is None and r.json()["status"] == "queued" for r in responses)
    assert responses[0].headers["Location"].startswith("/v1/jobs/")
    assert 1.0 <= elapsed < 3.5  # four 1 s waits overlapped, not 4 s in a row
    assert probe < 0.5


def test_concurrent_requests_are_queued_as_one_batch_task(settings, redis_url):
    app = create_app(settings)

    async def scenario() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await asyncio.gather(*(
                    client.post("/v1/classify", headers=ALICE,
                                files={"file": (f"{i}.png", png_bytes(i), "image/png")})
                    for i in range(8)))

    responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [202] * 8
    ids = {r.json()["id"] for r in responses}
    r = redis.Redis.from_url(redis_url)
    messages = [json.loads(m) for m in r.lrange("interactive", 0, -1)]
    assert {m["headers"]["task"] for m in messages} == {"tagger.classify_batch"}
    refs = [ref for m in messages for ref in json.loads(base64.b64decode(m["body"]))[0][0]]
    assert sorted(job_id for job_id, _ in refs) == sorted(ids)  # each job once, chunk 0
    assert {chunk for _, chunk in refs} == {0} and len(messages) < 8  # coalesced


def test_classify_with_wait_zero_answers_at_once(client):
    start = time.perf_counter()
    response = client.post("/v1/classify", headers=ALICE,
                           files={"file": ("a.png", png_bytes(1), "image/png")})
    assert response.status_code == 202 and time.perf_counter() - start < 1
    job = client.get(f"/v1/jobs/{response.json()['id']}", headers=ALICE).json()
    assert (job["kind"], job["source"], job["progress"]["total"]) == ("classify", "file", 1)


def test_classify_honours_idempotency_keys(client):
    headers = ALICE | {"Idempotency-Key": "photo-1"}
    first = client.post("/v1/classify", headers=headers, files={"file": ("a.png", png_bytes(1))})
    again = client.post("/v1/classify", headers=headers, files={"file": ("a.png", png_bytes(1))})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
