"""The one error shape, `{"error": {"code": "...", "message": "..."}}`, raised from one place.

Routes raise `ApiError`; FastAPI's own errors (unknown route 404, 405, request validation 422,
malformed multipart 400) are converted by the handlers installed here, so a client never sees
another shape. A 500 is always a bug: it is logged with its traceback.
"""

from __future__ import annotations

import logging

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as KombuOperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
         415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests",
         503: "unavailable"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.headers = headers


def is_out_of_memory(exc: Exception) -> bool:
    """Redis refused a write at `maxmemory` (noeviction); inside a script that is a plain
    ResponseError."""
    return (isinstance(exc, redis.exceptions.OutOfMemoryError)
            or "OOM command not allowed" in str(exc))


def not_found(what: str = "job") -> ApiError:
    # Another tenant's job answers exactly like a missing one: IDs are not confirmed to exist.
    return ApiError(404, f"{what} not found")


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        # ("body", "top_k") -> "top_k"; ("query", "wait") -> "wait"
        loc = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = str(exc.detail)
    if exc.status_code == 400 and "Too many files" in message:
        # Starlette's multipart parser counts parts before our own item-count check runs.
        return error_response(413, "too_many_items", message)
    return error_response(exc.status_code, CODES.get(exc.status_code, "error"), message,
                          getattr(exc, "headers", None))


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(422, "invalid_request", _validation_message(exc))


async def _backend_down(request: Request, exc: Exception) -> JSONResponse:
    # Not the client's fault and not a bug in our code: say so, and that a retry may work.
    log.warning("backend unavailable on %s %s: %s", request.method, request.url.path, exc)
    if is_out_of_memory(exc):
        return error_response(503, "at_capacity", "the job store is full; retry later",
                              {"Retry-After": "30"})
    return error_response(503, "unavailable", "the job store is unreachable; retry later",
                          {"Retry-After": "5"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error (a bug: reported)")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(redis.RedisError, _backend_down)
    app.add_exception_handler(KombuOperationalError, _backend_down)
    app.add_exception_handler(Exception, _unexpected)
