"""A worker on default settings refuses URLs that point inside the network."""

from __future__ import annotations

from tests.conftest import png_bytes
from tests.e2e.conftest import ALICE, all_results, wait_done


def test_private_addresses_are_refused_per_item(api_default_fetch, local_server):
    local_server.routes["/a.png"] = (200, {"Content-Type": "image/png"}, png_bytes(1))
    port = local_server.url.rsplit(":", 1)[1]
    manifest = (f"item_id,url\nA,{local_server.url}/a.png\nB,http://localhost:{port}/a.png\n"
                "C,http://169.254.169.254/latest/meta-data/\nD,http://[::1]:1/x.png\n")
    response = api_default_fetch.post(
        "/v1/jobs", files={"manifest": ("m.csv", manifest.encode())}, headers=ALICE)
    job = wait_done(api_default_fetch, response.json()["id"])
    assert job["status"] == "failed" and job["progress"]["failed"] == 4
    results = all_results(api_default_fetch, job["id"])
    assert all("non-public address" in r["error"] for r in results), results
