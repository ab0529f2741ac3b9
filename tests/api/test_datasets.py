"""POST/GET /v1/datasets: validation of a zip of class folders, with a real Redis."""

from __future__ import annotations

import zipfile

import pytest
import redis

from store.datasets import DatasetStore
from tests.api.conftest import ALICE, BOB
from tests.shapes import shapes_members, zip_bytes

OPS = {"Authorization": "Bearer ops-key"}


@pytest.fixture
def settings(settings):
    # Big enough for 30 small PNGs; the defaults of tests/api/conftest.py are tighter.
    return settings.model_copy(update={"max_items_per_job": 100, "dataset_min_images_per_class": 5})


def post(client, data: bytes, headers=OPS, filename: str = "shapes.zip"):
    return client.post("/v1/datasets", files={"archive": (filename, data)}, headers=headers)


def test_a_valid_dataset_is_stored_with_its_counts(client, settings):
    members = shapes_members(per_class=6, prefix="shapes/")  # one wrapper folder is allowed
    members["shapes/circle/.DS_Store"] = b"junk"  # hidden files are not data
    response = post(client, zip_bytes(members))
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == f"/v1/datasets/{body['id']}"
    assert body["labels"] == ["circle", "square", "triangle"] and body["total"] == 18
    assert body["classes"] == [{"label": k, "count": 6} for k in body["labels"]]
    assert client.get(f"/v1/datasets/{body['id']}", headers=OPS).json() == body
    assert [d["id"] for d in client.get("/v1/datasets", headers=OPS).json()["items"]] == [
        body["id"]]
    stored = list(DatasetStore(redis.Redis.from_url(settings.redis_url)).iter_images(body["id"]))
    assert len(stored) == 18 and {label for label, _, _ in stored} == {0, 1, 2}
    assert stored[0][2].startswith(b"\x89PNG")


@pytest.mark.parametrize("members,fragment", [
    (shapes_members(6, ("circle",)), "at least 2 class folders"),
    (shapes_members(6, ("circle",)) | shapes_members(3, ("square",)),
     "at least 5 images; too few in: square (3)"),
    (shapes_members(6) | {"circle/broken.png": shapes_members(1)["circle/circle-0.png"][:60]},
     "1 unusable file(s): circle/broken.png: not a decodable image"),
    (shapes_members(6) | {"loose.png": shapes_members(1)["circle/circle-0.png"]},
     "loose.png: not inside a class folder"),
    (shapes_members(6) | {"square/notes.txt": b"hello"}, "square/notes.txt: not a decodable"),
    (shapes_members(6) | {"../evil/x.png": b"x"}, "unsafe path in the archive: '../evil/x.png'"),
    (shapes_members(6) | {"/abs/x.png": b"x"}, "unsafe path"),
])
def test_invalid_datasets_are_refused_with_the_reason(client, members, fragment):
    response = post(client, zip_bytes(members))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_dataset" and fragment in error["message"]


def test_not_a_zip_and_zip_bombs(client, tmp_path):
    response = post(client, b"just some text, not an archive", filename="x.zip")
    assert response.status_code == 415 and response.json()["error"]["code"]
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for kind in ("a", "b"):
            for i in range(5):
                archive.writestr(f"{kind}/{i}.png", b"\0" * 150_000)  # past the image cap
    response = post(client, path.read_bytes())
    assert response.status_code == 422
    assert "a/0.png: file larger than 100000 bytes" in response.json()["error"]["message"]


def test_datasets_belong_to_their_tenant(client):
    response = post(client, zip_bytes(shapes_members(6)), headers=ALICE)
    assert response.status_code == 201, response.text
    dataset_id = response.json()["id"]
    assert client.get(f"/v1/datasets/{dataset_id}", headers=ALICE).status_code == 200
    assert client.get(f"/v1/datasets/{dataset_id}", headers=BOB).status_code == 404
    assert client.get("/v1/datasets", headers=BOB).json()["items"] == []
    # An operator runs the service: it sees every tenant's.
    assert client.get(f"/v1/datasets/{dataset_id}", headers=OPS).status_code == 200
    assert [d["id"] for d in client.get("/v1/datasets", headers=OPS).json()["items"]] == [
        dataset_id]
    # ...and another tenant cannot train on it.
    training = client.post("/v1/training-jobs", json={"dataset": dataset_id}, headers=BOB)
    assert training.status_code == 422 and "unknown dataset" in training.text
    assert client.get("/v1/datasets/ds-000000000000", headers=OPS).status_code == 404
    assert client.get("/v1/datasets/../../x", headers=OPS).status_code == 404
