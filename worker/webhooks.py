"""Completion webhooks: a signed POST of the job summary to the job's `callback_url`.

Signed per the Standard Webhooks specification (the `standardwebhooks` package): headers
`webhook-id` (the job id: the same on every retry, so receivers de-duplicate on it),
`webhook-timestamp` (unix seconds, at each attempt) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`), with the job's tenant's own secret
(worker.names.tenant_webhook_secret, shown to that tenant by GET /v1/webhook-secret). A
receiver that verifies the signature and refuses timestamps older than a few minutes rejects
forgeries (another tenant cannot sign for this one) and replays.

Delivery is at least once (the job store's outbox, retries, a redelivered task). The
receiver's answer is read up to MAX_RESPONSE_BYTES, within the same per-URL deadline as image
fetches.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from store.results import job_summary
from worker.fetch import Deadline, FetchError, pinned_request
from worker.names import tenant_webhook_secret

MAX_RESPONSE_BYTES = 64 * 1024  # a receiver's answer is not ours to buffer whole


def signed_headers(body: bytes, job_id: str, secret: str, now: datetime | None = None
                   ) -> dict[str, str]:
    """The Standard Webhooks headers for `body` (`secret`: whsec_...)."""
    now = now or datetime.now(UTC)
    return {"webhook-id": job_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(job_id, now, body.decode())}


def deliver(url: str, job: dict[str, str], master_secret: str, timeout_s: float,
            deadline_s: float, allow_private: bool) -> None:
    """POST once, signed with the job's tenant's secret; raises FetchError on anything but a
    2xx (the caller retries)."""
    body = json.dumps(job_summary(job), separators=(",", ":")).encode()
    secret = tenant_webhook_secret(master_secret, job["tenant"])
    headers = {"Content-Type": "application/json", "User-Agent": "fashion-tagger-webhook/1",
               **signed_headers(body, job["id"], secret)}
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
