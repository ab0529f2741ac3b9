"""URL fetching: SSRF guard, redirects re-checked, content type and size caps; webhooks signed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from benchmarks.hostile import HostileServer, hostile_urls
from tests.conftest import png_bytes
from worker import webhooks
from worker.fetch import (
    Deadline,
    FetchError,
    fetch_all,
    fetch_image,
    is_public,
    pinned_request,
)
from worker.names import tenant_webhook_secret

PNG = {"Content-Type": "image/png"}


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "100.100.100.200", "0.0.0.0", "224.0.0.1", "240.0.0.1", "::1", "fe80::1%eth0",
    "fc00::1", "fd00:ec2::254", "::ffff:127.0.0.1", "ff02::1"])
def test_non_public_addresses_are_refused(address):
    assert not is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert is_public(address)


def fetch(url: str, allow_private: bool = True, max_bytes: int = 10_000) -> bytes:
    with httpx.Client(timeout=5) as client:
        return fetch_image(client, url, max_bytes, allow_private, Deadline(10, 5))


def test_loopback_is_refused_unless_allowed(local_server):
    local_server.routes["/a.png"] = (200, PNG, png_bytes(1))
    with pytest.raises(FetchError, match="non-public address"):
        fetch(local_server.url + "/a.png", allow_private=False)
    with pytest.raises(FetchError, match="non-public address"):
        fetch(local_server.url.replace("127.0.0.1", "localhost") + "/a.png",
              allow_private=False)
    assert fetch(local_server.url + "/a.png") == png_bytes(1)


def test_redirects_are_followed_and_rechecked(local_server):
    local_server.routes["/a.png"] = (200, PNG, png_bytes(2))
    local_server.routes["/go"] = (302, {"Location": "/a.png"}, b"")
    local_server.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    local_server.routes["/evil"] = (302, {"Location": "file:///etc/passwd"}, b"")
    assert fetch(local_server.url + "/go") == png_bytes(2)
    with pytest.raises(FetchError, match="redirects"):
        fetch(local_server.url + "/loop")
    with pytest.raises(FetchError, match="scheme"):
        fetch(local_server.url + "/evil")


def test_content_type_status_and_size_are_checked(local_server):
    local_server.routes["/page"] = (200, {"Content-Type": "text/html"}, b"<html>")
    local_server.routes["/big"] = (200, PNG, b"x" * 20_000)
    with pytest.raises(FetchError, match="not an image"):
        fetch(local_server.url + "/page")
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(local_server.url + "/missing.png")
    with pytest.raises(FetchError, match="larger than 10000"):
        fetch(local_server.url + "/big")


def test_webhook_is_signed_for_its_tenant_with_standard_webhooks(local_server):
    job = {"id": "j1", "tenant": "alice", "kind": "bulk", "source": "files",
           "status": "succeeded", "total": "2", "done": "2", "failed": "0", "skipped": "0",
           "created_at": "t0", "started_at": "t1", "finished_at": "t2", "model_version": "v",
           "model": "", "top_k": "3", "review_threshold": ""}
    webhooks.deliver(local_server.url + "/hook", job, "s3cret", 5, 10, allow_private=True)
    _, headers, body = local_server.received[0]
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers["webhook-id"] == "j1"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    summary = Webhook(tenant_webhook_secret("s3cret", "alice")).verify(body, headers)
    assert summary["id"] == "j1"
    for secret in (tenant_webhook_secret("s3cret", "bob"),  # another tenant's: no forgery
                   tenant_webhook_secret("other", "alice")):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body, headers)
    stale = headers | webhooks.signed_headers(  # a replay of an old, validly signed message
        body, "j1", tenant_webhook_secret("s3cret", "alice"),
        datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(tenant_webhook_secret("s3cret", "alice")).verify(body, stale)
    local_server.post_status.append(500)
    with pytest.raises(FetchError, match="HTTP 500"):
        webhooks.deliver(local_server.url + "/hook", job, "s3cret", 5, 10, allow_private=True)
    with pytest.raises(FetchError, match="non-public"):
        webhooks.deliver(local_server.url + "/hook", job, "s3cret", 5, 10, allow_private=False)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::"])
def test_the_connection_is_pinned_to_the_checked_address(monkeypatch, address):
    monkeypatch.setattr("socket.getaddrinfo",
                        lambda *a, **k: [(None, None, None, "", (address, 443))])
    with httpx.Client() as client:
        request = pinned_request(client, "GET", "https://shop.example:443/a.png", False)
    assert request.url.host == address  # no second DNS lookup can change the target
    assert request.headers["Host"] == "shop.example"
    assert request.extensions["sni_hostname"] == "shop.example"  # TLS verifies the name


@pytest.fixture
def hostile():
    server = HostileServer(png_bytes(1))
    yield server
    server.close()


def test_every_hostile_url_ends_as_an_error_within_its_deadline(hostile):
    urls = hostile_urls(hostile.url)
    start = time.monotonic()
    fetched = fetch_all([*urls.values(), f"{hostile.url}/ok.png"], max_bytes=1_000_000,
                        allow_private=True, timeout_s=2, deadline_s=3)
    elapsed = time.monotonic() - start
    *bad, good = fetched
    assert good == png_bytes(1)
    for name, outcome in zip(urls, bad, strict=True):
        assert isinstance(outcome, FetchError), name
    by_name = dict(zip(urls, (str(e) for e in bad), strict=True))
    assert "per-URL deadline" in by_name["drip"]
    assert "larger than" in by_name["huge"] and "larger than" in by_name["huge-undeclared"]
    assert "redirects" in by_name["redirect-loop"]
    assert "IDNA" in by_name["idna-host"] and "IDNA" in by_name["redirect-to-idna"]
    # All in parallel, each within its deadline (3 s) plus scheduling slack.
    assert elapsed < 8, elapsed
