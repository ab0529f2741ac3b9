"""Fault injection against real processes: every job ends, whatever dies.

Each test runs its own Redis server (append-only file on, as `fashion-tagger up` runs it), real
Celery worker processes, the API, and kills one of them with SIGKILL mid-job. The pass
criterion is what survives: the job ends, every index has exactly one result, and each label
equals the offline predictor's on the same bytes. Leases, the reaper and the upload stall are
shortened (FAULT_ENV) so the tests take seconds, not the production minutes; the chaos
benchmark (`python -m benchmarks chaos`) runs the same faults with production settings on
10,000-image jobs.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from benchmarks.hostile import HostileServer, hostile_urls, wait_until
from cli.redis_server import EmbeddedRedis, free_port
from core.settings import Settings
from store import keys
from tests.conftest import png_bytes
from tests.e2e.conftest import ALICE, KEYS, SECRET, TERMINAL, all_results, start_worker

FAULT_ENV = {"TAGGER_CHUNK_LEASE_S": "3", "TAGGER_REAPER_INTERVAL_S": "0.5",
             "TAGGER_UPLOAD_STALL_S": "3", "TAGGER_FETCH_DEADLINE_S": "3",
             "TAGGER_FETCH_TIMEOUT_S": "2"}
FAULT_SETTINGS = {"chunk_lease_s": 3, "reaper_interval_s": 0.5, "upload_stall_s": 3}
JOB_IMAGES = 480
CHUNK_SIZE = 16


@dataclass
class Stack:
    redis: EmbeddedRedis
    worker: subprocess.Popen
    client: TestClient
    data_dir: Path

    def start_worker(self, model_path: Path) -> subprocess.Popen:
        return start_worker(self.redis.url, model_path, self.data_dir, allow_private=True,
                            env=FAULT_ENV, own_session=True)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults")  # model and ONNX caches shared by the tests


@pytest.fixture
def stack(tmp_path, data_dir, model_path) -> Iterator[Stack]:
    server = EmbeddedRedis(tmp_path / "redis").start()
    worker = start_worker(server.url, model_path, data_dir, allow_private=True, env=FAULT_ENV,
                          own_session=True)
    settings = Settings(redis_url=server.url, api_keys=KEYS, chunk_size=CHUNK_SIZE,
                        webhook_secret=SECRET, **FAULT_SETTINGS)
    live = Stack(server, worker, TestClient(create_app(settings)), data_dir)
    try:
        with live.client:
            yield live
    finally:
        kill_group(live.worker)
        live.redis.stop()


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a worker and its children at once, as an OOM kill or a lost VM would."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return [png_bytes(i) for i in range(JOB_IMAGES)]


@pytest.fixture(scope="module")
def offline_labels(offline, images) -> list[int]:
    return [p.label_index for p in offline.predict_images(images)]


def submit_zip(client: TestClient, images: list[bytes], **form) -> str:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for i, data in enumerate(images):
            zf.writestr(f"{i}.png", data)
    response = client.post("/v1/jobs", files={"archive": ("a.zip", archive.getvalue())},
                           data=form, headers=ALICE)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def progress(client: TestClient, job_id: str) -> dict:
    return client.get(f"/v1/jobs/{job_id}", headers=ALICE).json()


def wait_ended(client: TestClient, job_id: str, timeout_s: float) -> dict:
    """The job once it ended (a 503 while Redis restarts is polled through)."""
    return wait_until(lambda: (job := progress(client, job_id)).get("status") in TERMINAL and job,
                      timeout_s, every_s=0.2)


def assert_every_item_once_as_offline(client: TestClient, job_id: str,
                                      labels: list[int]) -> None:
    items = all_results(client, job_id)
    assert sorted(item["index"] for item in items) == list(range(len(labels)))
    for item in items:
        assert item["status"] == "ok", item
        assert item["label_index"] == labels[int(item["filename"].split(".")[0])], item


def mid_job(client: TestClient, job_id: str) -> None:
    wait_until(lambda: 0 < progress(client, job_id)["progress"]["done"] < JOB_IMAGES, 60,
               every_s=0.02)


def test_a_killed_worker_child_loses_nothing(stack, images, offline_labels):
    job_id = submit_zip(stack.client, images)
    mid_job(stack.client, job_id)
    (child,) = psutil.Process(stack.worker.pid).children()
    os.kill(child.pid, signal.SIGKILL)
    job = wait_ended(stack.client, job_id, 120)
    assert job["status"] == "succeeded" and job["progress"]["done"] == JOB_IMAGES
    assert_every_item_once_as_offline(stack.client, job_id, offline_labels)


def test_a_whole_worker_killed_mid_job_is_replaced_and_the_job_ends(stack, images,
                                                                     offline_labels,
                                                                     model_path):
    job_id = submit_zip(stack.client, images)
    mid_job(stack.client, job_id)
    kill_group(stack.worker)  # parent and child: the chunk in flight has nobody left
    stack.worker = stack.start_worker(model_path)
    started = time.monotonic()
    job = wait_ended(stack.client, job_id, 120)
    # The lapsed lease (3 s here, TAGGER_CHUNK_LEASE_S) puts the chunk back within seconds,
    # not after the broker's visibility timeout (2 hours).
    assert time.monotonic() - started < 60
    assert job["status"] == "succeeded" and job["progress"]["done"] == JOB_IMAGES
    assert_every_item_once_as_offline(stack.client, job_id, offline_labels)


def test_redis_killed_and_restarted_on_its_append_only_file(stack, images, offline_labels):
    job_id = submit_zip(stack.client, images)
    mid_job(stack.client, job_id)
    stack.redis.process.kill()  # SIGKILL: only what the append-only file holds survives
    stack.redis.process.wait()
    started = time.monotonic()
    down = stack.client.get(f"/v1/jobs/{job_id}", headers=ALICE)
    assert down.status_code == 503 and down.headers["Retry-After"]
    assert down.json()["error"]["code"] == "unavailable"
    assert time.monotonic() - started < 5  # refused at once, never a hang
    time.sleep(1)
    stack.redis = EmbeddedRedis(stack.redis.data_dir, port=stack.redis.port).start()
    job = wait_ended(stack.client, job_id, 120)
    assert job["status"] == "succeeded" and job["progress"]["done"] == JOB_IMAGES
    assert_every_item_once_as_offline(stack.client, job_id, offline_labels)
    assert stack.worker.poll() is None  # the worker lived through its broker's restart


def test_a_hostile_manifest_ends_with_per_item_errors(stack, offline):
    hostile = HostileServer(png_bytes(1))
    try:
        bad = hostile_urls(hostile.url)
        rows = [*bad.items(), *((f"good-{i}", f"{hostile.url}/ok.png") for i in range(3))]
        manifest = "item_id,url\n" + "".join(f"{item},{url}\n" for item, url in rows)
        response = stack.client.post(
            "/v1/jobs", files={"manifest": ("m.csv", manifest.encode())}, headers=ALICE)
        assert response.status_code == 202, response.text
        job = wait_ended(stack.client, response.json()["id"], 60)
    finally:
        hostile.close()
    assert job["status"] == "succeeded"
    assert job["progress"] == {"total": len(rows), "done": 3, "failed": len(bad), "skipped": 0}
    items = {item["item_id"]: item for item in all_results(stack.client, job["id"])}
    expected = offline.predict_images([png_bytes(1)])[0].label_index
    for item_id in bad:
        assert items[item_id]["status"] == "error" and items[item_id]["error"], item_id
    for i in range(3):
        assert items[f"good-{i}"]["label_index"] == expected


def test_a_job_past_its_deadline_ends_once_with_the_rest_skipped(stack, local_server):
    """Slow fetches hold the chunk past the job's deadline: the job ends at the deadline, its
    unprocessed items skipped, and its webhook is delivered once."""
    hostile = HostileServer(png_bytes(1))
    try:
        manifest = "item_id,url\n" + "".join(f"slow-{i},{hostile.url}/drip.jpg\n"
                                             for i in range(4))
        response = stack.client.post(
            "/v1/jobs", files={"manifest": ("m.csv", manifest.encode())},
            data={"deadline_s": "2", "callback_url": f"{local_server.url}/hook"},
            headers=ALICE)
        assert response.status_code == 202, response.text
        assert response.json()["deadline_at"]
        job = wait_ended(stack.client, response.json()["id"], 30)
        assert (job["status"], job["end_reason"]) == ("failed", "deadline")  # none tagged
        assert job["progress"]["skipped"] == 4
        items = all_results(stack.client, job["id"])
        assert {item["status"] for item in items} == {"skipped"}
        assert all(item["error"].startswith("deadline:") for item in items)
        wait_until(lambda: local_server.received, 30)
        time.sleep(5)  # the chunk's own end and the reaper's later sweeps add nothing
    finally:
        hostile.close()
    assert len(local_server.received) == 1
    assert json.loads(local_server.received[0][2])["end_reason"] == "deadline"


def test_the_api_killed_mid_upload_leaves_a_job_the_reaper_ends(tmp_path):
    """No worker runs: the upload, the API's death, the retry and the reaper are the API's."""
    with EmbeddedRedis(tmp_path / "redis") as server:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAGGER_")} | {
            "TAGGER_REDIS_URL": server.url, "TAGGER_API_KEYS": KEYS, "TAGGER_CHUNK_SIZE": "4",
            "TAGGER_UPLOAD_STALL_S": "3", "TAGGER_REAPER_INTERVAL_S": "0.5",
            "TAGGER_DATA_DIR": str(tmp_path)}

        def api() -> subprocess.Popen:
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_until(lambda: _answers(f"{url}/healthz"), 60)
            return process

        url = f"http://127.0.0.1:{port}"
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            for i in range(20_000):  # enough chunk writes to kill the API between two
                zf.writestr(f"{i}.png", png_bytes(i % 200))
        body = archive.getvalue()
        headers = {**ALICE, "Idempotency-Key": "nightly-upload"}

        def post() -> httpx.Response:
            return httpx.post(f"{url}/v1/jobs", files={"archive": ("a.zip", body)},
                              headers=headers, timeout=120)

        first = api()
        client = redis.Redis.from_url(server.url)
        threading.Thread(target=lambda: _ignore_errors(post), daemon=True).start()
        (partial,) = wait_until(lambda: client.zrange(keys.UPLOADING_KEY, 0, -1), 60,
                                every_s=0.005)
        first.kill()  # SIGKILL mid-upload
        first.wait()
        partial = partial.decode()
        assert client.hget(keys.job_key(partial), "sealed") == b"0"
        second = api()
        try:
            started = time.monotonic()
            while (retry := post()).status_code == 409:  # "still in progress": retry later
                assert retry.headers["Retry-After"]
                time.sleep(1)
            assert retry.status_code == 202, retry.text
            assert time.monotonic() - started < 60
            job = retry.json()
            assert job["id"] != partial and job["progress"]["total"] == 20_000
            ended = httpx.get(f"{url}/v1/jobs/{partial}", headers=ALICE).json()
            assert (ended["status"], ended["end_reason"]) == ("failed", "upload interrupted")
        finally:
            second.terminate()
            second.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


def _ignore_errors(call) -> None:
    try:
        call()
    except httpx.HTTPError:
        pass  # the server was killed under it: that is the test
