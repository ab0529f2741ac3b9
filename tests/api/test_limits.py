"""The request guard (api.limits) on a real uvicorn server and a raw socket: answers from the
headers alone, before the body is read; quotas (429), admission control (503), event-stream
caps."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from api.auth import Tenant
from api.errors import ApiError
from api.main import create_app
from api.streams import StreamSlots
from core.settings import Settings
from store import keys
from tests.api.conftest import ALICE, BOB, served
from tests.conftest import png_bytes

HUGE = 500 * 1024 * 1024  # what the hostile requests declare


@pytest.fixture
def live(settings) -> Iterator[str]:
    quotas = {"alice": {"active_jobs": 1, "streams": 1}, "bob": {"requests": "3/minute"}}
    with served(create_app(settings.model_copy(update={"tenant_quotas": quotas}))) as url:
        yield url


def raw_request(url: str, head: str, body_part: bytes, timeout_s: float = 5
                ) -> tuple[int, dict[str, str], bytes, float]:
    """Send `head` and the first part of a body the headers say is much longer; return the
    answer (status, headers, body) and how long it took."""
    host, port = url.removeprefix("http://").split(":")
    started = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(head.encode() + b"\r\n")
        try:
            sock.sendall(body_part)
        except OSError:
            pass  # the server may answer and close before the part is sent: that is the point
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        head_bytes, _, rest = answer.partition(b"\r\n\r\n")
        lines = head_bytes.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        while len(rest) < int(headers.get("content-length", 0)):
            rest += sock.recv(65536)
    return int(lines[0].split()[1]), headers, rest, time.perf_counter() - started


@pytest.mark.parametrize("path,content_type", [
    ("/v1/training-jobs", "application/json"),
    ("/v1/jobs", "multipart/form-data; boundary=x"),
    ("/v1/classify", "multipart/form-data; boundary=x"),
])
def test_an_unauthenticated_huge_body_is_refused_before_it_is_read(live, path, content_type):
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {HUGE}\r\n")
    status, headers, body, seconds = raw_request(live, head, b"[" * 1_000_000)
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized"
    assert headers["connection"] == "close"  # the rest is never read
    assert seconds < 1


@pytest.mark.parametrize("path,cap", [("/v1/training-jobs", 64 * 1024),
                                      ("/v1/classify", 100_000 + 64 * 1024),
                                      ("/v1/jobs", 300_000)])
def test_a_declared_body_past_the_routes_cap_is_413_before_it_is_read(live, path, cap):
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice-key\r\n"
            f"Content-Type: application/json\r\nContent-Length: {cap + 1}\r\n")
    status, headers, body, seconds = raw_request(live, head, b"{" * 1000)
    assert status == 413 and json.loads(body)["error"]["message"].endswith(f"{cap} bytes")
    assert headers["connection"] == "close" and seconds < 1


def test_a_chunked_json_body_is_counted_as_it_arrives(client):
    def chunks():
        for _ in range(20):
            yield b" " * 10_000  # 200 kB of whitespace: valid JSON padding, past 64 KiB

    response = client.post("/v1/training-jobs", content=chunks(),
                           headers=ALICE | {"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_tenant_past_its_request_rate_gets_429_with_retry_after(live):
    answers = [httpx.get(f"{live}/v1/jobs", headers=BOB) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60
    assert httpx.get(f"{live}/v1/jobs", headers=ALICE).status_code == 200  # per tenant


def test_a_tenant_at_its_active_jobs_quota_gets_429_before_uploading(live):
    files = [("files", ("a.png", png_bytes(1), "image/png"))]
    assert httpx.post(f"{live}/v1/jobs", files=files, headers=ALICE).status_code == 202
    head = ("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice-key\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 299999\r\n")
    status, headers, body, _ = raw_request(live, head, b"--x\r\n")
    assert status == 429 and headers["retry-after"]
    assert "connection" not in headers  # the rest is discarded: the client reads Retry-After
    assert json.loads(body)["error"]["code"] == "quota_exceeded"
    assert httpx.post(f"{live}/v1/jobs", files=files, headers=BOB).status_code == 202


@pytest.mark.parametrize("quota", [{"queued_items": 5}, {"queued_bytes": 500}])
def test_a_bulk_job_past_the_tenants_queued_items_or_bytes_is_refused_and_removed(settings,
                                                                                   quota):
    from fastapi.testclient import TestClient

    files = [("files", (f"{i}.png", png_bytes(i), "image/png")) for i in range(9)]
    assert sum(len(png_bytes(i)) for i in range(4)) < 500 < sum(
        len(png_bytes(i)) for i in range(8))
    quotas = {"alice": quota}
    with TestClient(create_app(settings.model_copy(update={"tenant_quotas": quotas}))) as c:
        response = c.post("/v1/jobs", files=files, headers=ALICE)
        assert response.status_code == 429 and response.headers["Retry-After"]
        assert response.json()["error"]["code"] == "quota_exceeded"
        assert c.get("/v1/jobs", headers=ALICE).json()["items"] == []  # nothing left
        assert c.post("/v1/jobs", files=files[:4], headers=ALICE).status_code == 202
        assert c.post("/v1/jobs", files=files, headers=BOB).status_code == 202  # per tenant


@pytest.mark.parametrize("update", [{"redis_maxmemory": 1000},  # "used" past 80% of it
                                    {"admission_input_fraction": 1e-9}])
def test_submissions_get_503_while_the_service_is_at_capacity(settings, update):
    from fastapi.testclient import TestClient

    r = redis.Redis.from_url(settings.redis_url)
    r.hset(keys.USAGE_KEY, keys.INPUT_BYTES_FIELD, 10_000)  # images waiting in Redis
    with TestClient(create_app(settings.model_copy(update=update))) as client:
        files = [("files", ("a.png", png_bytes(1), "image/png"))]
        for response in (client.post("/v1/jobs", files=files, headers=ALICE),
                         client.post("/v1/classify", files={"file": ("a.png", png_bytes(1))},
                                     headers=ALICE)):
            assert response.status_code == 503 and response.headers["Retry-After"]
            assert response.json()["error"]["code"] == "at_capacity"
        assert client.get("/v1/jobs", headers=ALICE).status_code == 200  # reads go on


def test_event_streams_are_capped_per_tenant_and_per_process(live):
    files = [("files", ("a.png", png_bytes(1), "image/png"))]
    alice_job = httpx.post(f"{live}/v1/jobs", files=files, headers=ALICE).json()["id"]

    async def scenario() -> tuple[int, int]:
        async with httpx.AsyncClient(base_url=live, timeout=10) as client:
            async with client.stream("GET", f"/v1/jobs/{alice_job}/events",
                                     headers=ALICE) as first:
                assert first.status_code == 200  # open: no worker runs, the job waits
                second = await client.get(f"/v1/jobs/{alice_job}/events", headers=ALICE)
                assert second.json()["error"]["code"] == "quota_exceeded"
                return first.status_code, second.status_code

    assert asyncio.run(scenario()) == (200, 429)
    # Its slot came back when the first stream's client left.
    deadline = time.monotonic() + 5
    while True:
        try:
            with httpx.stream("GET", f"{live}/v1/jobs/{alice_job}/events", headers=ALICE,
                              timeout=2) as again:
                assert again.status_code == 200
                break
        except AssertionError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_stream_slots_refuse_past_the_caps_and_come_back():
    slots = StreamSlots(max_streams=2)
    alice, bob = Tenant("alice"), Tenant("bob")

    async def events():
        yield "x"

    async def consume(stream) -> list[str]:
        return [event async for event in stream]

    first = slots.guarded(alice, 1, events())
    with pytest.raises(ApiError) as per_tenant:
        slots.guarded(alice, 1, events())
    assert per_tenant.value.status == 429
    second = slots.guarded(bob, None, events())
    with pytest.raises(ApiError) as per_process:
        slots.guarded(Tenant("carol"), None, events())
    assert per_process.value.status == 503
    assert asyncio.run(consume(first)) == ["x"]  # ended: its slot is back
    assert slots.open == 1 and "alice" not in slots.by_tenant
    del second  # never started (its client left first): released when collected
    gc.collect()
    assert slots.open == 0 and not slots.by_tenant


def test_a_full_redis_is_a_503_never_a_500(tmp_path):
    """Past maxmemory (noeviction) Redis refuses writes; whatever refuses first, admission or
    Redis itself, the client is told to come back (503 + Retry-After)."""
    from fastapi.testclient import TestClient

    from cli.redis_server import EmbeddedRedis

    with EmbeddedRedis(tmp_path, maxmemory=4 * 1024 * 1024) as server:
        client = redis.Redis.from_url(server.url)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for i in range(100):
                client.set(f"filler:{i}", b"f" * 200_000)
        settings = Settings(redis_url=server.url, api_keys="alice-key:alice",
                            admission_memory_fraction=1.0, admission_input_fraction=1.0)
        with TestClient(create_app(settings)) as api:
            files = [("files", (f"{i}.png", png_bytes(i), "image/png")) for i in range(3)]
            response = api.post("/v1/jobs", files=files, headers=ALICE)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "at_capacity"
            assert response.headers["Retry-After"]
            assert api.get("/v1/jobs", headers=ALICE).status_code == 200  # reads go on
