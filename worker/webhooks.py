"""Completion webhooks: a signed POST of the job summary to the job's `callback_url`.

The receiver checks `X-Signature: sha256=<hex>`, an HMAC-SHA256 over the raw body with the
shared TAGGER_WEBHOOK_SECRET. Delivery may repeat (retries, a redelivered task): receivers
de-duplicate on `X-Tagger-Job`.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from store.results import job_summary
from worker.fetch import FetchError, pinned_request

SIGNATURE_HEADER = "X-Signature"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str, secret: str) -> bool:
    return hmac.compare_digest(sign(body, secret), signature)


def deliver(url: str, job: dict[str, str], secret: str, timeout_s: float,
            allow_private: bool) -> None:
    """POST once; raises FetchError on anything but a 2xx (the caller retries)."""
    body = json.dumps(job_summary(job), separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret),
               "X-Tagger-Job": job["id"], "User-Agent": "fashion-tagger-webhook/1"}
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        request = pinned_request(client, "POST", url, allow_private, content=body,
                                 headers=headers)
        try:
            response = client.send(request)
        except httpx.HTTPError as exc:
            raise FetchError(f"webhook POST failed: {type(exc).__name__}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise FetchError(f"webhook POST answered HTTP {response.status_code}")
