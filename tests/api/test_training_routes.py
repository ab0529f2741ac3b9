"""/v1/training-jobs with a real Redis and no worker: validation, queueing, cancel, the reaper,
artifacts; and pinning a model version on POST /v1/jobs."""

from __future__ import annotations

import json
import struct
import time

import pytest
import redis

from core.models import SHIPPED_MODEL_PATH
from store.datasets import DatasetStore
from store.registry import METADATA_KEY, ModelRegistry
from store.training import DEFAULT_LEASE_S, REDELIVERY_S, TrainingStore
from tests.api.conftest import ALICE, BOB
from tests.conftest import png_bytes

OPS = {"Authorization": "Bearer ops-key"}
QUICK = {"max_train_items": 300, "epochs": 1}


@pytest.fixture
def r(settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


@pytest.fixture
def v1(r) -> str:
    return ModelRegistry(r).register(SHIPPED_MODEL_PATH.read_bytes(), "seed", only_if_empty=True)


def test_a_training_job_is_queued_on_the_training_queue(client, r):
    response = client.post("/v1/training-jobs", json=QUICK | {"activate": "always"},
                           headers=OPS)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/v1/training-jobs/{job['id']}"
    assert job["status"] == "queued" and job["model_version"] is None
    assert job["request"] == {"dataset": "fashion-mnist", "recipe": "default-fast",
                              "arch": "default", "epochs": 1,
                              "batch_size": 128, "lr": 0.003, "augment": True, "seed": 0,
                              "max_train_items": 300, "init_from": None, "activate": "always"}
    assert job["progress"] == {"epoch": 0, "epochs": 1, "step": 0, "steps": 0, "fraction": 0}
    message = json.loads(r.lindex("training", 0))
    assert message["headers"]["task"] == "tagger.train_model" and r.llen("bulk") == 0
    assert client.get(f"/v1/training-jobs/{job['id']}", headers=OPS).json() == job
    listed = client.get("/v1/training-jobs", headers=OPS).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_a_recipe_fills_the_fields_a_request_leaves_out(client):
    job = client.post("/v1/training-jobs", json={"recipe": "default", "lr": 0.002},
                      headers=OPS).json()
    fields = ("recipe", "arch", "epochs", "batch_size", "lr", "augment")
    assert {k: job["request"][k] for k in fields} == {
        "recipe": "default", "arch": "default", "epochs": 50, "batch_size": 128, "lr": 0.002,
        "augment": True}
    assert job["progress"]["epochs"] == 50
    baseline = client.post("/v1/training-jobs", json={"recipe": "baseline"}, headers=OPS).json()
    assert {k: baseline["request"][k] for k in ("arch", "epochs", "batch_size", "augment")} == {
        "arch": "baseline", "epochs": 5, "batch_size": 64, "augment": False}
    unknown = client.post("/v1/training-jobs", json={"recipe": "nope"}, headers=OPS)
    assert unknown.status_code == 422 and "recipe" in unknown.json()["error"]["message"]
    alone = client.post("/v1/training-jobs", json={"recipe": "finetune"}, headers=OPS)
    assert alone.status_code == 422 and "init_from" in alone.json()["error"]["message"]


def test_only_operators_activate_models(client, v1):
    response = client.post(f"/v1/models/{v1}/activate", headers=ALICE)
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "forbidden", "message": "this operation"
                               " needs an operator API key (key:tenant:operator)"}}
    for activate in ("always", "if_better"):  # a tenant's run may not activate its model
        response = client.post("/v1/training-jobs", json=QUICK | {"activate": activate},
                               headers=ALICE)
        assert response.status_code == 403 and "operator" in response.json()["error"]["message"]
    assert client.post("/v1/training-jobs", json=QUICK).status_code == 401


def test_training_jobs_belong_to_their_tenant(client):
    job = client.post("/v1/training-jobs", json=QUICK, headers=ALICE)
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    assert job.json()["request"]["activate"] == "never"  # a tenant's default
    for method, path in [("get", ""), ("delete", ""), ("get", "/events"),
                         ("get", "/artifacts/curves.png")]:
        response = client.request(method, f"/v1/training-jobs/{job_id}{path}", headers=BOB)
        assert response.status_code == 404, (method, path)
    assert client.get("/v1/training-jobs", headers=BOB).json()["items"] == []
    assert [j["id"] for j in client.get("/v1/training-jobs", headers=ALICE).json()["items"]] \
        == [job_id]
    assert client.get(f"/v1/training-jobs/{job_id}", headers=OPS).status_code == 200


def test_a_tenant_has_a_quota_of_training_jobs(client):
    assert client.post("/v1/training-jobs", json=QUICK, headers=ALICE).status_code == 202
    again = client.post("/v1/training-jobs", json=QUICK, headers=ALICE)
    assert again.status_code == 429 and again.headers["Retry-After"]
    assert again.json()["error"]["code"] == "quota_exceeded"
    assert client.post("/v1/training-jobs", json=QUICK, headers=BOB).status_code == 202


def test_activating_a_version_with_other_labels_needs_force(client, r, v1):
    other = ModelRegistry(r).register(_relabelled(SHIPPED_MODEL_PATH.read_bytes()), "other")
    response = client.post(f"/v1/models/{other}/activate", headers=OPS)
    assert response.status_code == 409 and response.json()["error"]["code"] == "labels_differ"
    assert ModelRegistry(r).active() == v1
    forced = client.post(f"/v1/models/{other}/activate?force=true", headers=OPS)
    assert forced.status_code == 200 and ModelRegistry(r).active() == other
    # Going back to v1 changes the labels again: forced too; then v1 again is no change.
    assert client.post(f"/v1/models/{v1}/activate", headers=OPS).status_code == 409
    assert client.post(f"/v1/models/{v1}/activate?force=true", headers=OPS).status_code == 200
    assert client.post(f"/v1/models/{v1}/activate", headers=OPS).status_code == 200


@pytest.mark.parametrize("body,fragment", [
    ({"arch": "resnet9000"}, "Unknown arch 'resnet9000'; choose one of: baseline, default, large"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": 1000}, "epochs"),
    ({"lr": 0}, "lr"),
    ({"activate": "sometimes"}, "activate"),
    ({"epoch": 3}, "epoch: Extra inputs are not permitted"),
    ({"dataset": "ds-000000000000"}, "dataset: unknown dataset 'ds-000000000000'"),
    ({"dataset": "../x"}, "dataset: unknown dataset"),
    ({"init_from": "v7"}, "init_from: unknown model version 'v7'"),
    ({"init_from": "v1", "arch": "large"}, "init_from: v1 is arch 'default', not 'large'"),
])
def test_invalid_requests_are_422(client, v1, body, fragment):
    response = client.post("/v1/training-jobs", json=QUICK | body, headers=OPS)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]["message"]


def test_init_from_must_have_the_labels_of_the_dataset(client, r, v1):
    dataset = DatasetStore(r).create("ops", ["circle", "square"], [(0, b"a"), (1, b"b")])
    response = client.post("/v1/training-jobs", headers=OPS,
                           json={"dataset": dataset["id"], "init_from": v1})
    message = response.json()["error"]["message"]
    assert response.status_code == 422 and "classes that name no label" in message
    assert "T-shirt_top for T-shirt/top" in message  # how to name a folder for that label
    ok = client.post("/v1/training-jobs", headers=OPS, json={"dataset": dataset["id"]})
    assert ok.status_code == 202 and ok.json()["request"]["dataset"] == dataset["id"]


def test_a_merchants_photos_fine_tune_the_model_whatever_their_folders_order(client, r, v1):
    """A dataset's classes are its folder names, sorted; `T-shirt/top` cannot be a folder
    name. Both match the model's labels, and the photo recipe is filled in."""
    folders = sorted(["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"])
    dataset = DatasetStore(r).create("ops", folders, [(i, b"x") for i in range(10)])
    response = client.post("/v1/training-jobs", headers=OPS, json={
        "dataset": dataset["id"], "recipe": "photo-finetune", "init_from": v1,
        "activate": "never"})
    assert response.status_code == 202, response.text
    request = response.json()["request"]
    assert (request["recipe"], request["arch"], request["batch_size"]) == (
        "photo-finetune", "default", 8)


def test_cancel_a_queued_job_and_then_409(client):
    job_id = client.post("/v1/training-jobs", json=QUICK, headers=OPS).json()["id"]
    response = client.delete(f"/v1/training-jobs/{job_id}", headers=OPS)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client.delete(f"/v1/training-jobs/{job_id}", headers=OPS)
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
    assert client.delete("/v1/training-jobs/nope", headers=OPS).status_code == 404


def test_a_running_job_is_asked_to_stop(client, settings, r):
    job_id = client.post("/v1/training-jobs", json=QUICK, headers=OPS).json()["id"]
    TrainingStore(r, settings.result_ttl_s).start(job_id, "w1")
    response = client.delete(f"/v1/training-jobs/{job_id}", headers=OPS)
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)


def test_reading_a_job_whose_worker_died_marks_it_failed(client, settings, r):
    job_id = client.post("/v1/training-jobs", json=QUICK, headers=OPS).json()["id"]
    TrainingStore(r, settings.result_ttl_s).start(
        job_id, "w1", time.time() - 2 * DEFAULT_LEASE_S - REDELIVERY_S - 1)
    job = client.get(f"/v1/training-jobs/{job_id}", headers=OPS).json()
    assert job["status"] == "failed" and job["error"].startswith("worker lost")
    events = client.get(f"/v1/training-jobs/{job_id}/events", headers=OPS).text
    assert events.startswith("event: end\n") and '"status":"failed"' in events


def test_artifacts_unknown_names_list_the_valid_ones(client, settings, r):
    store = TrainingStore(r, settings.result_ttl_s)
    job_id = client.post("/v1/training-jobs", json=QUICK, headers=OPS).json()["id"]
    response = client.get(f"/v1/training-jobs/{job_id}/artifacts/curves.png", headers=OPS)
    assert response.status_code == 404 and "none while it is queued" in response.text
    store.start(job_id, "w1")
    store.finish(job_id, "succeeded", {}, {"curves.png": b"\x89PNG-c", "metrics.json": b"{}"})
    png = client.get(f"/v1/training-jobs/{job_id}/artifacts/curves.png", headers=OPS)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content == b"\x89PNG-c"
    metrics = client.get(f"/v1/training-jobs/{job_id}/artifacts/metrics.json", headers=OPS)
    assert metrics.headers["content-type"] == "application/json"
    missing = client.get(f"/v1/training-jobs/{job_id}/artifacts/confusion.png", headers=OPS)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == (
        "no artifact 'confusion.png'; this job has: curves.png, metrics.json")


def test_a_job_may_pin_an_existing_model_version(client, v1):
    files = [("files", ("a.png", png_bytes(1), "image/png"))]
    response = client.post("/v1/jobs", files=files, data={"model": "v7"}, headers=ALICE)
    assert response.status_code == 422
    assert "model: unknown model version 'v7'" in response.json()["error"]["message"]
    response = client.post("/v1/jobs", files=files, data={"model": v1}, headers=ALICE)
    assert response.status_code == 202 and response.json()["model"] == "v1"


def _relabelled(checkpoint: bytes) -> bytes:
    """The same checkpoint with other labels (a model of a tenant's own dataset)."""
    (length,) = struct.unpack("<Q", checkpoint[:8])
    header = json.loads(checkpoint[8:8 + length])
    meta = json.loads(header["__metadata__"][METADATA_KEY])
    meta["labels"] = [f"class-{i}" for i in range(len(meta["labels"]))]
    header["__metadata__"][METADATA_KEY] = json.dumps(meta)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + checkpoint[8 + length:]
