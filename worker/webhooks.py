"""Completion webhooks: a signed POST of the job summary to the job's `callback_url`.

The receiver checks `X-Signature: sha256=<hex>`, an HMAC-SHA256 over the raw body with the
shared TAGGER_WEBHOOK_SECRET. Delivery is at least once (the job store's outbox, retries, a
redelivered task): receivers de-duplicate on `X-Tagger-Job`. The receiver's answer is read up
to MAX_RESPONSE_BYTES, within the same per-URL deadline as image fetches.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from store.results import job_summary
from worker.fetch import Deadline, FetchError, pinned_request

SIGNATURE_HEADER = "X-Signature"
MAX_RESPONSE_BYTES = 64 * 1024  # a receiver's answer is not ours to buffer whole


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str, secret: str) -> bool:
    return hmac.compare_digest(sign(body, secret), signature)


def deliver(url: str, job: dict[str, str], secret: str, timeout_s: float, deadline_s: float,
            allow_private: bool) -> None:
    """POST once; raises FetchError on anything but a 2xx (the caller retries)."""
    body = json.dumps(job_summary(job), separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret),
               "X-Tagger-Job": job["id"], "User-Agent": "fashion-tagger-webhook/1"}
    deadline = Deadline(deadline_s, timeout_s)
    with httpx.Client(follow_redirects=False) as client:
        request = pinned_request(client, "POST", url, allow_private, deadline, content=body,
                                 headers=headers)
        try:
            response = client.send(request, stream=True)
            try:
                read = 0
                for part in response.iter_bytes():
                    read += len(part)
                    if read >= MAX_RESPONSE_BYTES or deadline.left() <= 0:
                        break
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise FetchError(f"webhook POST failed: {type(exc).__name__}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise FetchError(f"webhook POST answered HTTP {response.status_code}")
