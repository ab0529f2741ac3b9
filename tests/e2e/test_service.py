"""The whole service: real Redis, a real Celery worker process, the real API."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile

from standardwebhooks import Webhook

from tests.conftest import flat_background_tiff, png_bytes
from tests.e2e.conftest import ALICE, BOB, SECRET, all_results, wait_done
from worker.names import tenant_webhook_secret


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def post_zip(api, members: dict[str, bytes], headers=ALICE, **data):
    return api.post("/v1/jobs", files={"archive": ("batch.zip", zip_of(members))},
                    data=data, headers=headers)


def test_ready_with_a_live_worker(api):
    assert api.get("/readyz").json() == {"status": "ok", "redis": True, "workers": 1}


def test_classify_with_wait_returns_what_the_offline_predictor_says(api, offline):
    image = png_bytes(3)
    api.post("/v1/classify?wait=30", files={"file": ("w.png", png_bytes(0))}, headers=ALICE)
    response = api.post("/v1/classify?wait=10", files={"file": ("shoe.png", image)},
                        headers=ALICE)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = offline.predict_images([image])[0]
    assert body["status"] == "succeeded" and body["progress"]["done"] == 1
    assert (body["result"]["label"], body["result"]["label_index"]) == (
        expected.label, expected.label_index)
    assert abs(body["result"]["confidence"] - expected.confidence) < 1e-4
    assert body["result"]["filename"] == "shoe.png"
    # The worker seeded the empty registry with its TAGGER_MODEL_PATH: version v1.
    assert body["model_version"] == "v1" == body["result"]["model_version"]


def test_bulk_zip_with_a_corrupt_member_tags_the_rest(api, offline):
    images = {f"img{i:02d}.png": png_bytes(i) for i in range(19)}
    members = images | {"corrupt.png": png_bytes(1)[:40], "nested.zip": zip_of({"a": b"a"})}
    response = post_zip(api, members, top_k="2")
    assert response.status_code == 202 and response.json()["progress"]["total"] == 21
    assert response.json()["status"] in ("queued", "running")  # workers start during upload
    job = wait_done(api, response.json()["id"])
    assert job["status"] == "succeeded"
    assert job["progress"] == {"total": 21, "done": 19, "failed": 2, "skipped": 0}
    assert job["started_at"] and job["finished_at"] and job["model_version"] == "v1"
    results = {r["filename"]: r for r in all_results(api, job["id"])}
    assert results["corrupt.png"]["status"] == "error" and results["corrupt.png"]["error"]
    assert results["nested.zip"]["error"] == "nested archives are not supported"
    expected = offline.predict_images(list(images.values()), top_k=2)
    for (name, _), pred in zip(images.items(), expected, strict=True):
        assert results[name]["status"] == "ok" and results[name]["label"] == pred.label
        assert [t["label"] for t in results[name]["top_k"]] == [s.label for s in pred.top_k]


def test_manifest_is_fetched_from_a_local_server(api, local_server):
    for i in range(3):
        local_server.routes[f"/p{i}.png"] = (200, {"Content-Type": "image/png"}, png_bytes(i))
    local_server.routes["/page"] = (200, {"Content-Type": "text/html"}, b"<html>")
    manifest = "item_id,url\n" + "".join(
        f"SKU-{i},{local_server.url}/p{i}.png\n" for i in range(3)) + (
        f"SKU-404,{local_server.url}/missing.png\nSKU-html,{local_server.url}/page\n")
    response = api.post("/v1/jobs", files={"manifest": ("m.csv", manifest.encode())},
                        headers=ALICE)
    job = wait_done(api, response.json()["id"])
    assert job["progress"]["done"] == 3 and job["progress"]["failed"] == 2
    results = {r["item_id"]: r for r in all_results(api, job["id"])}
    assert [results[f"SKU-{i}"]["status"] for i in range(3)] == ["ok"] * 3
    assert "HTTP 404" in results["SKU-404"]["error"]
    assert "not an image" in results["SKU-html"]["error"]


def test_pagination_and_csv_export_cover_every_item_once(api):
    files = [("files", (f"f{i}.png", png_bytes(i))) for i in range(25)]
    job = wait_done(api, api.post("/v1/jobs", files=files, headers=ALICE).json()["id"])
    indices, cursor = [], 0
    while cursor is not None:
        page = api.get(f"/v1/jobs/{job['id']}/results",
                       params={"cursor": cursor, "limit": 10}, headers=ALICE).json()
        indices += [item["index"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert indices == list(range(25))
    exported = api.get(f"/v1/jobs/{job['id']}/results?format=csv", headers=ALICE).text
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["filename"] for r in rows] == [f"f{i}.png" for i in range(25)]
    assert all(r["status"] == "ok" and r["label"] for r in rows)


def test_idempotency_key_gives_one_job(api):
    headers = ALICE | {"Idempotency-Key": "e2e-once"}
    first = post_zip(api, {"a.png": png_bytes(1)}, headers=headers).json()
    second = post_zip(api, {"a.png": png_bytes(1)}, headers=headers).json()
    assert first["id"] == second["id"]
    assert wait_done(api, first["id"])["progress"]["total"] == 1


def test_cancel_skips_what_was_not_processed(api):
    members = {f"c{i:04d}.png": png_bytes(i) for i in range(800)}
    job_id = post_zip(api, members).json()["id"]
    cancelled = api.delete(f"/v1/jobs/{job_id}", headers=ALICE)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    job = wait_done(api, job_id)
    assert job["status"] == "cancelled" and job["progress"]["skipped"] > 0
    deadline = time.monotonic() + 60  # the worker drains the cancelled chunks quickly
    while True:
        results = all_results(api, job_id)
        job = api.get(f"/v1/jobs/{job_id}", headers=ALICE).json()
        progress = job["progress"]
        statuses = {r["status"] for r in results}
        if len(results) == 800 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(results) == 800 and statuses <= {"ok", "skipped"}
    assert progress["done"] + progress["skipped"] == 800
    assert sum(r["status"] == "skipped" for r in results) == progress["skipped"]


def test_webhook_is_retried_and_signed(api, local_server):
    local_server.post_status.append(500)  # the first delivery fails: retried after 1 s
    response = post_zip(api, {"a.png": png_bytes(1)},
                        callback_url=f"{local_server.url}/hook")
    job = wait_done(api, response.json()["id"])
    deadline = time.monotonic() + 30
    while len(local_server.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(local_server.received) == 2
    path, headers, body = local_server.received[-1]
    assert path == "/hook"
    # Signed for alice (Standard Webhooks): what GET /v1/webhook-secret gives her.
    secret = api.get("/v1/webhook-secret", headers=ALICE).json()["secret"]
    assert secret == tenant_webhook_secret(SECRET, "alice")
    summary = Webhook(secret).verify(body, headers)
    assert summary == json.loads(body)
    assert (summary["id"], summary["status"]) == (job["id"], "succeeded")
    assert summary["progress"] == job["progress"]


def test_tenants_see_only_their_jobs(api):
    job_id = post_zip(api, {"a.png": png_bytes(1)}).json()["id"]
    wait_done(api, job_id)
    assert api.get(f"/v1/jobs/{job_id}", headers=BOB).status_code == 404
    assert api.get(f"/v1/jobs/{job_id}/results", headers=BOB).status_code == 404
    assert job_id not in [j["id"] for j in api.get("/v1/jobs", headers=BOB).json()["items"]]
    assert job_id in [j["id"] for j in api.get("/v1/jobs", headers=ALICE).json()["items"]]


def test_events_stream_progress_until_the_end(api):
    job_id = post_zip(api, {f"e{i}.png": png_bytes(i) for i in range(64)}).json()["id"]
    events = []
    with api.stream("GET", f"/v1/jobs/{job_id}/events", headers=ALICE) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
            elif line.startswith("data: "):
                events[-1] = (events[-1], json.loads(line.removeprefix("data: ")))
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "end" and set(kinds[:-1]) <= {"progress"}
    assert events[-1][1]["status"] == "succeeded"
    assert events[-1][1]["progress"]["done"] == 64


def test_a_zipped_flat_background_tiff_is_tagged_like_the_file_alone(api, offline):
    """600x800, white background, uncompressed: it zips ~500:1, which a compression-ratio rule
    took for a bomb. It is one photo, no bigger than TAGGER_MAX_IMAGE_BYTES: tagged, and as
    `predict` tags the same bytes."""
    tiff = flat_background_tiff()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("shot.tif", tiff)
    assert len(tiff) / len(buffer.getvalue()) > 200
    response = api.post("/v1/jobs", files={"archive": ("shot.zip", buffer.getvalue())},
                        headers=ALICE)
    job = wait_done(api, response.json()["id"])
    (item,) = all_results(api, job["id"])
    assert item["status"] == "ok", item
    assert item["label_index"] == offline.predict_images([tiff])[0].label_index
