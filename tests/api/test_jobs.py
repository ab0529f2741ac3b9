"""POST/GET/DELETE /v1/jobs and results, with a real Redis and no worker."""

from __future__ import annotations

import csv
import io
import json

import pytest
import redis

from core.models import SHIPPED_MODEL_PATH
from store import keys
from store.jobs import JobStore
from store.registry import ModelRegistry
from store.results import error_result
from tests.api.conftest import ALICE
from tests.conftest import png_bytes


def post_files(client, n: int, headers=ALICE, **data):
    files = [("files", (f"img{i}.png", png_bytes(i), "image/png")) for i in range(n)]
    return client.post("/v1/jobs", files=files, data=data, headers=headers)


def test_files_job_is_queued_with_its_chunks(client, settings):
    model = ModelRegistry(redis.Redis.from_url(settings.redis_url)).register(
        SHIPPED_MODEL_PATH.read_bytes(), "seed", only_if_empty=True)  # a version to pin
    response = post_files(client, 9, top_k="5", review_threshold="0.7", model=model)
    assert response.status_code == 202
    job = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert (job["status"], job["kind"], job["source"]) == ("queued", "bulk", "files")
    assert job["progress"] == {"total": 9, "done": 0, "failed": 0, "skipped": 0}
    assert (job["top_k"], job["review_threshold"], job["model"]) == (5, 0.7, "v1")
    r = redis.Redis.from_url(settings.redis_url)
    assert r.llen("bulk") == 3  # 9 items in chunks of 4: three task messages
    message = json.loads(r.lindex("bulk", 0))
    assert message["headers"]["task"] == "tagger.classify_chunk"
    assert len(r.lindex("bulk", 0)) < 2000  # ids only: the images stay in Redis
    metas = [json.loads(m) for m in r.lrange(keys.items_key(job["id"]), 0, -1)]
    assert [m["filename"] for m in metas] == [f"img{i}.png" for i in range(9)]


@pytest.mark.parametrize("data,message", [
    ({"top_k": "abc"}, "top_k"), ({"top_k": "11"}, "top_k"),
    ({"review_threshold": "2"}, "review_threshold"),
    ({"callback_url": "ftp://x/y"}, "callback_url"),
])
def test_malformed_options_are_422(client, data, message):
    response = post_files(client, 1, **data)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert message in response.json()["error"]["message"]


def test_exactly_one_source_is_required(client):
    assert client.post("/v1/jobs", data={"top_k": "3"}, headers=ALICE).status_code == 422
    files = [("files", ("a.png", png_bytes(1), "image/png")),
             ("archive", ("a.zip", b"PK\x05\x06" + b"\0" * 18, "application/zip"))]
    response = client.post("/v1/jobs", files=files, headers=ALICE)
    assert response.status_code == 422
    assert "files, archive" in response.json()["error"]["message"]


def test_idempotency_key_returns_the_same_job(client):
    first = post_files(client, 2, headers=ALICE | {"Idempotency-Key": "batch-7"})
    again = post_files(client, 2, headers=ALICE | {"Idempotency-Key": "batch-7"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["progress"]["total"] == 2
    assert again.headers["Idempotent-Replayed"] == "true"
    other = post_files(client, 1, headers={"X-API-Key": "bob-key", "Idempotency-Key": "batch-7"})
    assert other.json()["id"] != first.json()["id"]  # keys are per tenant


@pytest.mark.parametrize("change", [{"n": 3}, {"top_k": "5"}, {"swap": True}])
def test_a_reused_idempotency_key_with_another_request_is_422(client, change):
    """IETF Idempotency-Key draft, Stripe: the key names one request (its options and the
    bytes it uploaded); the same key with another body is a client error, not a replay."""
    headers = ALICE | {"Idempotency-Key": "batch-8"}
    first = post_files(client, 2, headers=headers)
    assert first.status_code == 202
    if "swap" in change:  # same names and options, other bytes
        files = [("files", (f"img{i}.png", png_bytes(i + 10), "image/png")) for i in range(2)]
        again = client.post("/v1/jobs", files=files, headers=headers)
    else:
        again = post_files(client, change.get("n", 2), headers=headers,
                           **{k: v for k, v in change.items() if k != "n"})
    assert again.status_code == 422
    assert again.json()["error"]["code"] == "idempotency_key_reused"


def test_a_reused_idempotency_key_on_classify_with_another_image_is_422(client):
    headers = ALICE | {"Idempotency-Key": "one-photo"}
    first = client.post("/v1/classify", files={"file": ("a.png", png_bytes(1))},
                        headers=headers)
    same = client.post("/v1/classify", files={"file": ("a.png", png_bytes(1))},
                       headers=headers)
    assert first.status_code == same.status_code == 202
    assert same.json()["id"] == first.json()["id"]
    other = client.post("/v1/classify", files={"file": ("a.png", png_bytes(2))},
                        headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_a_failed_submission_releases_its_idempotency_key(client):
    headers = ALICE | {"Idempotency-Key": "k"}
    bad = client.post("/v1/jobs", files={"archive": ("a.zip", b"nope", "application/zip")},
                      headers=headers)
    assert bad.status_code == 415
    assert post_files(client, 1, headers=headers).status_code == 202
    assert len(client.get("/v1/jobs", headers=ALICE).json()["items"]) == 1  # no debris


def test_listing_pages_newest_first(client):
    ids = [post_files(client, 1).json()["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        page = client.get("/v1/jobs", params={"limit": 2, "cursor": cursor}, headers=ALICE)
        seen += [j["id"] for j in page.json()["items"]]
        if not (cursor := page.json()["next_cursor"]):
            break
    assert seen == ids[::-1]
    assert client.get("/v1/jobs?cursor=abc", headers=ALICE).status_code == 422


def finish_some(settings, job_id: str, indices) -> None:
    """Play a worker: record error results for `indices` (chunk size 4)."""
    store = JobStore(redis.Redis.from_url(settings.redis_url), 60)
    by_chunk: dict[int, list[dict]] = {}
    for i in indices:
        by_chunk.setdefault(i // 4, []).append(error_result(i, {"filename": f"img{i}.png"},
                                                            "x", "v"))
    for chunk, results in by_chunk.items():
        store.record_results(job_id, chunk, results)


def test_results_page_by_index_and_export(client, settings):
    job_id = post_files(client, 10).json()["id"]
    finish_some(settings, job_id, range(10))
    page = client.get(f"/v1/jobs/{job_id}/results?limit=4&cursor=4", headers=ALICE).json()
    assert [i["index"] for i in page["items"]] == [4, 5, 6, 7] and page["next_cursor"] == 8
    assert page["items"][0]["filename"] == "img4.png"
    assert client.get(f"/v1/jobs/{job_id}/results?cursor=8",
                      headers=ALICE).json()["next_cursor"] is None
    exported = client.get(f"/v1/jobs/{job_id}/results?format=csv", headers=ALICE)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [int(r["index"]) for r in rows] == list(range(10))
    assert rows[3]["status"] == "error" and json.loads(rows[3]["top_k"]) == []
    lines = client.get(f"/v1/jobs/{job_id}/results?format=jsonl", headers=ALICE).text.splitlines()
    assert len(lines) == 10 and json.loads(lines[9])["index"] == 9


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3",
                                  "@SUM(A1)", "\tcmd", "\r=1"])
def test_csv_export_neutralises_formula_cells(client, settings, cell):
    """OWASP CSV injection: item ids, file names and errors come from clients; a spreadsheet
    runs a cell that starts with = + - @ (or tab/CR) as a formula."""
    manifest = b"item_id,url\nA,http://x/a.png\n"  # the result below carries the cells
    response = client.post("/v1/jobs", files={"manifest": ("m.csv", manifest)}, headers=ALICE)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    store = JobStore(redis.Redis.from_url(settings.redis_url), 60)
    store.record_results(job_id, 0, [error_result(0, {"item_id": cell, "filename": cell},
                                                  cell, "v")])
    exported = client.get(f"/v1/jobs/{job_id}/results?format=csv", headers=ALICE).text
    (row,) = csv.DictReader(io.StringIO(exported))
    for field in ("item_id", "filename", "error"):
        assert row[field].startswith("'") and row[field][1:] == cell, field
    jsonl = client.get(f"/v1/jobs/{job_id}/results?format=jsonl", headers=ALICE).text
    assert json.loads(jsonl)["item_id"] == cell  # data formats keep the value as it is


@pytest.mark.parametrize("url", ["http://x/hook\r\nX-Injected: 1", "http://x/a\nb",
                                 "http://x/\tb", "http://x/\x00", "http://x/\x7f"])
def test_a_callback_url_with_control_characters_is_422(client, url):
    response = post_files(client, 1, callback_url=url)
    assert response.status_code == 422, response.text
    assert "control characters" in response.json()["error"]["message"]


def test_cancel_skips_unprocessed_items(client, settings):
    job_id = post_files(client, 6).json()["id"]
    finish_some(settings, job_id, [0, 1])
    cancelled = client.delete(f"/v1/jobs/{job_id}", headers=ALICE)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["finished_at"]
    assert cancelled.json()["progress"] == {"total": 6, "done": 0, "failed": 2, "skipped": 4}
    assert client.delete(f"/v1/jobs/{job_id}", headers=ALICE).status_code == 200  # no-op
    items = client.get(f"/v1/jobs/{job_id}/results", headers=ALICE).json()["items"]
    assert [i["status"] for i in items] == ["error"] * 2 + ["skipped"] * 4


def test_cancelling_a_finished_job_is_409(client, settings):
    job_id = post_files(client, 2).json()["id"]
    finish_some(settings, job_id, [0, 1])
    response = client.delete(f"/v1/jobs/{job_id}", headers=ALICE)
    assert response.status_code == 409 and response.json()["error"]["code"] == "job_finished"


def test_events_stream_ends_with_the_final_job(client, settings):
    job_id = post_files(client, 2).json()["id"]
    finish_some(settings, job_id, [0, 1])
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=ALICE) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    assert text.startswith("event: end\ndata: ")
    assert json.loads(text.split("data: ", 1)[1])["status"] == "failed"
