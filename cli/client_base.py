"""What the sync and the async client share: the error type, the request description, the
retry rule, Server-Sent Events parsing and the multipart parts of an upload. No I/O on the
network here; cli.client (TaggerClient) and cli.aclient (AsyncTaggerClient) send.
"""

from __future__ import annotations

import email.utils
import json
import mimetypes
import os.path
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from cli.schemas import Job

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz")
# Above this many files, submit_files packs them into one zip (stored, not compressed: photos
# are compressed already) instead of one multipart part each: one open file, not thousands.
MAX_PARTS = 256
# Answers that mean "not now, later": rate limited, or the server/Redis briefly unavailable.
RETRY_STATUSES = (429, 503)
IDEMPOTENT_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")
UPLOAD_TIMEOUT = httpx.Timeout(None, connect=10.0)  # no read timeout while a body goes up


class TaggerError(Exception):
    """An error answer (`status` > 0) or no answer at all (`status` 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def __str__(self) -> str:
        where = f", HTTP {self.status}" if self.status else ""
        return f"{self.message} ({self.code}{where})"


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def error_from(response: httpx.Response) -> TaggerError:
    """The API's `{"error": {code, message}}` of a read answer, or its status line."""
    code, message = f"http_{response.status_code}", response.reason_phrase or "error"
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        pass  # not our JSON error shape (a proxy's page): the status line says enough
    return TaggerError(response.status_code, code, message)


@dataclass
class Call:
    """One request, described once for both clients."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    files: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: httpx.Timeout | None = None  # None: the client's default

    @property
    def idempotent(self) -> bool:
        """Safe to send again: GET/DELETE..., or a POST the server deduplicates by its key."""
        return self.method in IDEMPOTENT_METHODS or "Idempotency-Key" in self.headers

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"params": self.params, "headers": self.headers}
        for name in ("json", "data", "files"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.timeout is not None:
            out["timeout"] = self.timeout
        return out

    def rewind(self) -> None:
        """Before sending again: uploaded files from their first byte."""
        parts = self.files.values() if isinstance(self.files, dict) else (
            part for _, part in self.files or [])
        for part in parts:
            handle = part[1] if isinstance(part, tuple) else part
            if hasattr(handle, "seek"):
                handle.seek(0)


@dataclass(frozen=True)
class RetryPolicy:
    """Idempotent calls answered 429 or 503 are sent again after the server's `Retry-After`
    (else an exponential backoff from `backoff_s`), at most `attempts` times in all and for at
    most `max_wait_s` seconds of waiting: a server that asks for longer is not waited for."""

    attempts: int = 4
    max_wait_s: float = 60.0
    backoff_s: float = 0.5

    def delay(self, call: Call, response: httpx.Response, attempt: int, waited_s: float
              ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up."""
        if (response.status_code not in RETRY_STATUSES or not call.idempotent
                or attempt >= self.attempts):
            return None
        delay = retry_after_s(response)
        if delay is None:
            delay = self.backoff_s * 2 ** (attempt - 1)
        return delay if waited_s + delay <= self.max_wait_s else None


NO_RETRY = RetryPolicy(attempts=1)


def retry_after_s(response: httpx.Response, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # malformed: fall back to backoff
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class SseParser:
    """Server-Sent Events, line by line -> (event name, JSON data) at each blank line."""

    def __init__(self) -> None:
        self.name, self.data = "message", []

    def feed(self, line: str) -> tuple[str, Any] | None:
        if not line:
            event = (self.name, json.loads("\n".join(self.data))) if self.data else None
            self.name, self.data = "message", []
            return event
        if line.startswith(":"):
            return None  # keep-alive comment
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self.name = value
        elif name == "data":
            self.data.append(value)
        return None

    def close(self) -> tuple[str, Any] | None:
        return self.feed("")


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    parser = SseParser()
    for line in lines:
        if event := parser.feed(line):
            yield event
    if event := parser.close():
        yield event


class JobWait:
    """`wait`'s rule, one for both clients: every update goes to `on_update`; the wait ends
    with the job, or with TimeoutError once `timeout_s` has passed."""

    def __init__(self, job_id: str, on_update: Callable[[Job], None] | None,
                 timeout_s: float | None) -> None:
        self.job_id, self.on_update = job_id, on_update
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def ended(self, job: Job) -> bool:
        if self.on_update:
            self.on_update(job)
        if job.ended:
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeoutError(f"job {self.job_id} still {job.status}")
        return False

    @staticmethod
    def polling_helps(exc: TaggerError) -> bool:
        """The event stream broke off (no answer): polling goes on. An answer (404...) would
        be the same when polled."""
        return exc.status == 0


# -- request parts -----------------------------------------------------------------------------


def options(top_k: int, review_threshold: float | None = None, callback_url: str | None = None,
            model: str | None = None, deadline_s: int | None = None) -> dict[str, str]:
    """The form fields of POST /v1/jobs and /v1/classify; None values are left out."""
    out = {"top_k": str(top_k)}
    for name, value in (("review_threshold", review_threshold), ("callback_url", callback_url),
                        ("model", model), ("deadline_s", deadline_s)):
        if value is not None:
            out[name] = str(value)
    return out


def idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key else {}


def mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


@contextmanager
def file_parts(paths: list[Path]) -> Iterator[Any]:
    """Multipart parts for images: one `files` part each (each keeps its file name), or one
    zip `archive` when there are more than MAX_PARTS (each keeps its path relative to their
    common folder). The files stay open until the request is done."""
    if not paths:
        raise ValueError("no files to submit")
    with ExitStack() as stack:
        if len(paths) > MAX_PARTS:
            packed = stack.enter_context(tempfile.TemporaryFile())
            _zip_into(packed, paths)
            packed.seek(0)
            yield {"archive": ("images.zip", packed, "application/zip")}
        else:
            yield [("files", (p.name, stack.enter_context(p.open("rb")), mime(p.name)))
                   for p in paths]


@contextmanager
def single_part(field_name: str, path: Path, content_type: str | None = None
                ) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        yield {field_name: (path.name, handle, content_type or mime(path.name))}


def _zip_into(out: IO[bytes], paths: list[Path]) -> None:
    root = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for path in paths:
            archive.write(path, path.resolve().relative_to(root).as_posix())
