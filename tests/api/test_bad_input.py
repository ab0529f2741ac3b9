"""Limits and bad input: 413 / 415 / 422 in the one JSON error shape, never a 500."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from core.settings import Settings
from store import keys
from tests.api.conftest import ALICE
from tests.conftest import flat_background_tiff, png_bytes


def zip_of(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def post_archive(client, data: bytes, name: str = "a.zip"):
    return client.post("/v1/jobs", files={"archive": (name, data, "application/octet-stream")},
                       headers=ALICE)


def item_metas(settings, job_id: str) -> list[dict]:
    r = redis.Redis.from_url(settings.redis_url)
    return [json.loads(m) for m in r.lrange(keys.items_key(job_id), 0, -1)]


def assert_error(response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    if code:
        assert body["error"]["code"] == code
    return body["error"]["message"]


def test_declared_body_over_the_cap_is_413_before_reading(client):
    response = client.post("/v1/jobs", content=b"x" * 10, headers=ALICE | {
        "Content-Length": "999999999", "Content-Type": "multipart/form-data; boundary=x"})
    assert_error(response, 413, "payload_too_large")


def test_streamed_body_over_the_cap_is_413(client):
    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"x" * 10_000

    response = client.post("/v1/jobs", content=chunks(), headers=ALICE | {
        "Content-Type": "multipart/form-data; boundary=x"})
    assert_error(response, 413, "payload_too_large")


def test_a_part_over_the_image_cap_is_413(client):
    files = [("files", ("big.png", b"\x89PNG" + b"0" * 110_000, "image/png"))]
    assert "big.png" in assert_error(client.post("/v1/jobs", files=files, headers=ALICE), 413)


def test_too_many_items_is_413(client):
    files = [("files", (f"{i}.png", b"x", "image/png")) for i in range(21)]
    assert_error(client.post("/v1/jobs", files=files, headers=ALICE), 413, "too_many_items")
    many = zip_of({f"{i}.png": b"x" for i in range(21)})
    assert_error(post_archive(client, many), 413, "too_many_items")


@pytest.mark.parametrize("data", [b"just text", b"", b"\x1f\x8b\x08garbage-gzip"])
def test_not_an_archive_is_415_or_422(client, data):
    response = post_archive(client, data)
    assert response.status_code in (415, 422)
    assert_error(response, response.status_code)


def test_archive_members_become_items_with_per_item_errors(client, settings):
    flat = b"\0" * 90_000  # compresses ~1000x, yet no bigger than one image: read
    bomb = b"\0" * 150_000  # past the 100 kB image cap: an error, read no further
    inner = zip_of({"x.png": png_bytes(1)})
    data = zip_of({"dir/": b"", "../../etc/evil.png": png_bytes(2), "/abs.png": png_bytes(3),
                   "ok.png": png_bytes(4), "flat.bmp": flat, "bomb.bmp": bomb,
                   "nested.zip": inner, "notes.txt": b"hello", "__MACOSX/._ok.png": b"junk"})
    job = post_archive(client, data).json()
    metas = item_metas(settings, job["id"])
    by_name = {m["filename"]: m for m in metas}
    assert list(by_name) == ["../../etc/evil.png", "/abs.png", "ok.png", "flat.bmp",
                             "bomb.bmp", "nested.zip", "notes.txt"]  # labels, not paths
    assert "error" not in by_name["flat.bmp"]
    assert by_name["bomb.bmp"]["error"] == "file larger than 100000 bytes"
    assert by_name["nested.zip"]["error"] == "nested archives are not supported"
    assert "error" not in by_name["notes.txt"]  # decoded (and refused) by the worker, per item


def test_a_zipped_flat_background_tiff_is_an_item_not_a_bomb(redis_url):
    tiff = flat_background_tiff()
    data = zip_of({"shot.tif": tiff})
    assert len(tiff) / len(data) > 200  # what the old ratio guard refused
    settings = Settings(redis_url=redis_url, api_keys="alice-key:alice")
    with TestClient(create_app(settings)) as client:
        job = post_archive(client, data).json()
        (meta,) = item_metas(settings, job["id"])
        assert "error" not in meta
        stored = redis.Redis.from_url(redis_url).hget(keys.input_key(job["id"], 0), 0)
        assert stored == tiff  # read whole, byte for byte


@pytest.fixture
def roomy(settings):
    """The API with room for archives of many headers (512 bytes each count as read)."""
    roomy = settings.model_copy(update={"max_archive_uncompressed_bytes": 10**9,
                                        "max_upload_bytes": 2_000_000})
    with TestClient(create_app(roomy)) as client:
        yield client


def test_every_archive_entry_counts_not_only_files(roomy):
    client = roomy
    # 20 files are allowed; 1,000 entries that are not files (folders, links) besides them
    folders = zip_of({f"d{i}/": b"" for i in range(1_001)} | {"a.png": png_bytes(1)})
    assert "not files" in assert_error(post_archive(client, folders), 413, "too_many_items")
    # More entries than files and folders together may have: refused from the zip's end
    # record, before its directory is parsed.
    crowded = zip_of({f"d{i}/": b"" for i in range(1_100)})
    assert "holds 1100 entries" in assert_error(post_archive(client, crowded), 413,
                                                "too_many_items")
    tar = tar_of([_entry(f"d{i}", tarfile.DIRTYPE) for i in range(1_001)], {}, "w:gz")
    message = assert_error(post_archive(client, tar, "a.tar.gz"), 413, "too_many_items")
    assert "not files" in message


def test_a_tar_of_millions_of_headers_stops_at_the_entry_limit(roomy):
    client = roomy
    """Streamed one header at a time (nothing kept): refused after ~1,000 of its 300,000."""
    entry = _entry("d", tarfile.DIRTYPE).tobuf(format=tarfile.USTAR_FORMAT)
    data = gzip.compress(entry * 300_000 + b"\0" * 1024, 9)  # 150 MB in 670 kB
    assert_error(post_archive(client, data, "dirs.tar.gz"), 413, "too_many_items")


def test_tar_bytes_are_counted_as_read(client, settings):
    big = b"\0" * 150_000  # one member past the image cap: a per-item error
    members = [_entry("big.bmp", size=len(big)), _entry("a.png", size=len(png_bytes(1)))]
    job = post_archive(client, tar_of(members, {"big.bmp": big, "a.png": png_bytes(1)},
                                      "w:gz"), "a.tar.gz").json()
    by_name = {m["filename"]: m for m in item_metas(settings, job["id"])}
    assert by_name["big.bmp"]["error"] == "file larger than 100000 bytes"
    assert "error" not in by_name["a.png"]
    many = [_entry(f"{i}.bmp", size=90_000) for i in range(5)]  # 450 kB > the 400 kB cap
    data = tar_of(many, {f"{i}.bmp": b"\0" * 90_000 for i in range(5)}, "w:gz")
    assert "expands past" in assert_error(post_archive(client, data, "a.tar.gz"), 413)


def _entry(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type, entry.size = kind, size
    return entry


def test_archive_over_the_uncompressed_cap_is_413(client):
    data = zip_of({f"{i}.bmp": bytes(range(256)) * 200 for i in range(10)})  # 512 kB
    assert "expands" in assert_error(post_archive(client, data), 413)


def tar_of(members: list[tarfile.TarInfo], payloads: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for info in members:
            archive.addfile(info, io.BytesIO(payloads.get(info.name, b"")))
    return buffer.getvalue()


@pytest.mark.parametrize("mode,name", [("w", "a.tar"), ("w:gz", "a.tar.gz")])
def test_tar_skips_links_dirs_and_devices(client, settings, mode, name):
    def info(member: str, kind: bytes = tarfile.REGTYPE, size: int = 0) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(member)
        entry.type, entry.size = kind, size
        if kind == tarfile.SYMTYPE:
            entry.linkname = "/etc/passwd"
        return entry

    png = png_bytes(5)
    members = [info("d", tarfile.DIRTYPE), info("d/a.png", size=len(png)),
               info("link.png", tarfile.SYMTYPE), info("dev", tarfile.CHRTYPE),
               info("fifo", tarfile.FIFOTYPE)]
    job = post_archive(client, tar_of(members, {"d/a.png": png}, mode), name).json()
    assert [m["filename"] for m in item_metas(settings, job["id"])] == ["d/a.png"]


@pytest.mark.parametrize("manifest,name,line", [
    (b"item_id,url\nA,http://x/a.png\n,http://x/b.png\n", "m.csv", "line 3: item_id"),
    (b"item_id,url\nA,http://x/a.png\nB,\n", "m.csv", "line 3: url"),
    (b"item_id,url\nA,http://x/a.png\nA,http://x/b.png\n", "m.csv", "line 3: duplicate"),
    (b"item_id,url\nA,ftp://x/a.png\n", "m.csv", "line 2: unsupported URL scheme"),
    (b"sku,link\nA,http://x/a.png\n", "m.csv", "line 1"),
    (b'{"item_id": "A", "url": "http://x/a.png"}\n[1]\n', "m.jsonl", "line 2"),
    (b'{"item_id": "A", "url": "http://x/a.png"}\n{"item_id": "B"}\n', "m.jsonl", "line 2"),
    (b"\xff\xfe", "m.csv", "UTF-8"),
    (b"item_id,url\n", "m.csv", "no items"),
])
def test_bad_manifests_are_422_naming_the_line(client, manifest, name, line):
    response = client.post("/v1/jobs", files={"manifest": (name, manifest, "text/csv")},
                           headers=ALICE)
    assert line in assert_error(response, 422, "invalid_manifest")


def test_good_manifests_keep_item_ids(client, settings):
    csv_body = b"item_id,url,extra\nSKU-1,http://x/a.png,1\n\nSKU-2,https://x/b.jpg,2\n"
    jsonl = b'{"item_id": 17, "url": "http://x/a.png"}\n\n{"item_id": "B", "url": "http://x/b"}'
    for name, body in (("m.csv", csv_body), ("m.jsonl", jsonl)):
        response = client.post("/v1/jobs", files={"manifest": (name, body, "text/plain")},
                               headers=ALICE)
        assert response.status_code == 202, response.text
        metas = item_metas(settings, response.json()["id"])
        assert [m["item_id"] for m in metas] in (["SKU-1", "SKU-2"], ["17", "B"])
        assert all(m["url"].startswith("http") for m in metas)


@pytest.mark.parametrize("upload,status", [
    (("notes.txt", b"hello", "text/plain"), 415), (("empty.png", b"", "image/png"), 415),
    (("big.png", b"0" * 110_000, "image/png"), 413)])
def test_classify_rejects_non_images_and_oversized_files(client, upload, status):
    assert_error(client.post("/v1/classify", files={"file": upload}, headers=ALICE), status)


def test_classify_rejects_too_many_pixels(client):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (2000, 1000)).save(buffer, "PNG")  # 2 Mpx > 1 Mpx cap, few bytes
    response = client.post("/v1/classify", files={"file": ("huge.png", buffer.getvalue())},
                           headers=ALICE)
    assert "pixels" in assert_error(response, 413)


@pytest.mark.parametrize("method,path,kwargs,status", [
    ("GET", "/nope", {}, 404), ("PUT", "/v1/jobs", {}, 405),
    ("POST", "/v1/classify", {}, 422), ("POST", "/v1/classify?wait=31", {}, 422),
    ("POST", "/v1/classify?wait=abc", {}, 422),
    ("POST", "/v1/classify", {"content": b"{", "headers": {"Content-Type": "application/json"}},
     422),
    ("POST", "/v1/jobs", {"content": b"--x\r\ngarbage", "headers": {
        "Content-Type": "multipart/form-data; boundary=x"}}, None),
    ("GET", "/v1/jobs?limit=0", {}, 422), ("GET", "/v1/jobs/x/results?cursor=-1", {}, 422),
    ("GET", "/v1/jobs/x/results?format=xml", {}, 422),
    ("GET", "/v1/jobs/" + "x" * 5000, {}, 404),
])
def test_client_mistakes_get_the_json_error_shape(client, method, path, kwargs, status):
    headers = ALICE | kwargs.pop("headers", {})
    response = client.request(method, path, headers=headers, **kwargs)
    assert 400 <= response.status_code < 500
    assert_error(response, status or response.status_code)
