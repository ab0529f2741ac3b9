"""The request guard: who is asking, and whether they may, decided from the headers alone,
before the app reads a byte of the body.

For a request to /v1/, in this order (each a JSON error, api.errors):
1. 401 without a valid key (`Authorization: Bearer` or `X-API-Key`; api.auth);
2. 413 when Content-Length passes the route's cap: TAGGER_MAX_UPLOAD_BYTES for uploads
   (`/v1/jobs`, `/v1/datasets`), one image and its form for `/v1/classify`,
   TAGGER_MAX_JSON_BYTES for anything else (training jobs: JSON);
3. 429 + Retry-After past the tenant's request rate (api.quotas);
4. for a submission (classify, jobs, datasets, training jobs): 503 + Retry-After while the
   service is at capacity (api.quotas.Admission), and for a bulk job 429 + Retry-After while
   the tenant has its quota of active jobs.
A body without Content-Length (chunked) is counted as it arrives and refused the moment it
passes the cap. A 401 or 413 given before the body was read closes the connection, so the
server never reads, or waits for, the rest (a client sending a large body sees the answer
if it sends `Expect: 100-continue`, as curl does: the guard answers before any 100 Continue).
Requests outside /v1/ get the size cap only.

The tenant found here is left in the request's state for the routes (api.deps.authenticate).
"""

from __future__ import annotations

import logging

import redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import Tenant, key_from_headers
from api.errors import error_response, is_out_of_memory
from core.settings import Settings
from store.usage import aread_usage

log = logging.getLogger(__name__)

METHODS_WITH_BODY = ("POST", "PUT", "PATCH")
FORM_OVERHEAD_BYTES = 64 * 1024  # a one-image form's boundaries, headers and options
UPLOAD_ROUTES = ("/v1/jobs", "/v1/datasets")
SUBMISSIONS = ("/v1/classify", "/v1/jobs", "/v1/datasets", "/v1/training-jobs")


class BodyTooLarge(Exception):
    pass


def body_cap(path: str, settings: Settings) -> int:
    """The most bytes a request to `path` may send."""
    if path in UPLOAD_ROUTES:
        return settings.max_upload_bytes
    if path == "/v1/classify":
        return settings.max_image_bytes + FORM_OVERHEAD_BYTES
    return settings.max_json_bytes


class RequestGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = scope["app"].state.services
        settings: Settings = services.settings
        path, has_body = scope["path"], scope["method"] in METHODS_WITH_BODY
        headers = {k: v for k, v in scope["headers"]
                   if k in (b"authorization", b"x-api-key", b"content-length")}
        if path.startswith("/v1/"):
            tenant = services.keys.tenant_for(key_from_headers(
                _text(headers.get(b"authorization")), _text(headers.get(b"x-api-key"))))
            if tenant is None:
                sent_key = b"authorization" in headers or b"x-api-key" in headers
                message = ("invalid API key" if sent_key
                           else "missing API key (Authorization: Bearer <key>)")
                await _refuse(scope, receive, send, 401, "unauthorized", message,
                              {"WWW-Authenticate": "Bearer"}, close=has_body)
                return
            scope.setdefault("state", {})["tenant"] = tenant
        else:
            tenant = None
        cap = body_cap(path, settings) if has_body else 0
        declared = headers.get(b"content-length", b"")
        if has_body and declared.isdigit() and int(declared) > cap:
            await _refuse(scope, receive, send, 413, "payload_too_large",
                          f"request body larger than {cap} bytes", close=True)
            return
        if tenant is not None:
            try:
                refused = await self._refusal(services, tenant, path if has_body else "")
            except (redis.RedisError, OSError) as exc:
                log.warning("request guard: Redis unavailable: %s", exc)
                refused = ((503, "at_capacity", "the job store is full; retry later", 30)
                           if is_out_of_memory(exc)
                           else (503, "unavailable", "the job store is unreachable; retry"
                                 " later", 5))
            if refused is not None:
                # Not closed: "come back later" goes to a known tenant whose body is within its
                # cap, and the server discards the rest of it, so the client reads the answer
                # and its Retry-After (closing on unread data resets the connection, and a
                # client often loses the answer with it).
                status, code, message, retry = refused
                await _refuse(scope, receive, send, status, code, message,
                              {"Retry-After": str(retry)})
                return
        if not has_body:
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, cap)

    async def _refusal(self, services, tenant: Tenant, submission: str
                       ) -> tuple[int, str, str, int] | None:
        """(status, code, message, Retry-After) when the request must wait, else None."""
        quota = None if tenant.open else services.quotas.of(tenant.name)
        if quota is not None:
            retry = await services.limiter.retry_after(quota.requests, tenant.name)
            if retry is not None:
                return (429, "rate_limited", f"more than {quota.requests} requests for this"
                        " tenant (its quota)", retry)
        if submission not in SUBMISSIONS:
            return None
        reason = await services.admission.refusal()
        if reason is not None:
            return 503, "at_capacity", f"the service is at capacity ({reason}); retry later", 30
        if quota is not None and submission == "/v1/jobs":
            usage = await aread_usage(services.aredis, tenant.name)
            if usage.active_jobs >= quota.active_jobs:
                return (429, "quota_exceeded", f"this tenant has {usage.active_jobs} bulk jobs"
                        f" queued or running (its quota is {quota.active_jobs}); retry when one"
                        " ends", 30)
            if usage.queued_bytes >= quota.queued_bytes:
                return (429, "quota_exceeded", f"this tenant has {usage.queued_bytes} bytes of"
                        f" images queued (its quota is {quota.queued_bytes}); retry when they"
                        " are done", 30)
        return None

    async def _counted(self, scope: Scope, receive: Receive, send: Send, cap: int) -> None:
        received = 0
        too_large = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large:
                return  # the app's own answer to the aborted read is replaced by our 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await _refuse(scope, receive, send, 413, "payload_too_large",
                          f"request body larger than {cap} bytes", close=True)


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str,
                  message: str, headers: dict[str, str] | None = None,
                  close: bool = False) -> None:
    """The JSON error; `close`: the body was not read, so the connection cannot carry another
    request (and the server reads no more of it)."""
    headers = dict(headers or {})
    if close:
        headers["Connection"] = "close"
    await error_response(status, code, message, headers)(scope, receive, send)
