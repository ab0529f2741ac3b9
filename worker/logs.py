"""JSON log lines in worker processes (TAGGER_LOG_FORMAT=json, the default), each carrying the
job id of the task that wrote it.

Celery sets up its own handlers when a worker starts; these signal handlers put our formatter
on them, and put the job id of each task (its first argument: every task here takes ids in)
into the context that core.logs reads. worker.app lists this module in `include`, so only
worker processes import it.
"""

from __future__ import annotations

import logging
import re
from contextvars import Token
from typing import Any

from celery import signals

from core.logs import current_job_id, use_json
from core.settings import get_settings

JOB_ID = re.compile(r"^[0-9a-f]{32}$")  # uuid4().hex, as the job store makes them
_tokens: dict[str, Token] = {}  # task id -> token to restore the context after the task


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def use_json_lines(logger: logging.Logger, **_: Any) -> None:
    if get_settings().log_format != "json":
        return
    for handler in logger.handlers:
        use_json(handler)


@signals.task_prerun.connect
def enter_job(task_id: str, args: tuple | None = None, kwargs: dict | None = None,
              **_: Any) -> None:
    candidate = (kwargs or {}).get("job_id") or (args[0] if args else None)
    if isinstance(candidate, str) and JOB_ID.match(candidate):
        _tokens[task_id] = current_job_id.set(candidate)


@signals.task_postrun.connect
def leave_job(task_id: str, **_: Any) -> None:
    token = _tokens.pop(task_id, None)
    if token is not None:
        current_job_id.reset(token)
