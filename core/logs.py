"""JSON log lines for the service processes (API and workers), each carrying the job it is about.

One line per record: `{"ts": ..., "level": ..., "logger": ..., "message": ..., "job_id": ...}`
plus any `extra={...}` fields. The job id comes from `extra={"job_id": ...}` or, more often,
from the `job_context` set around a task or a request, so a log call deep in a helper carries
it without being told. Torch-free (the API uses it).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

current_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tagger_job_id", default=None)

# Attributes every LogRecord has: anything else on a record came from `extra=` and is logged.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",
    "color_message"}  # uvicorn's copy of the message with terminal colour codes
_MARK = "_tagger_json"  # set on the handler we install, so configuring twice is a no-op


@contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    token = current_job_id.set(job_id)
    try:
        yield
    finally:
        current_job_id.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None) or current_job_id.get()
        if job_id:
            line["job_id"] = job_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def use_json(handler: logging.Handler) -> None:
    handler.setFormatter(JsonFormatter())
    setattr(handler, _MARK, True)


def configure_json_logging(level: int = logging.INFO,
                           quiet: tuple[str, ...] = ("uvicorn.access",)) -> None:
    """Root logs JSON lines to stderr; the `quiet` loggers are silenced (the API writes its own
    access line, with the job id and route). Idempotent. A root logger that already has
    handlers of someone else's (a --log-config, a test runner's capture) is left alone: this
    process's logging was set up on purpose."""
    root = logging.getLogger()
    if any(not getattr(h, _MARK, False) for h in root.handlers):
        return
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        use_json(handler)
        root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    # uvicorn gives its loggers their own text handlers: route them through ours instead.
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    for name in quiet:
        logging.getLogger(name).disabled = True
