"""The API fuzzed from its own OpenAPI schema (schemathesis): whatever a client sends, no
answer is a 5xx, and every answer matches the schema (a documented status, a body of the
documented shape).

The app runs in a real uvicorn server in this process, on a real Redis server of its own, with
no worker: jobs and training runs it accepts stay queued, so fuzzing burns no model time. The
server is open (no API keys), so every request reaches the route's own checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, settings

from api.main import create_app
from cli.redis_server import EmbeddedRedis
from core.settings import Settings
from store.keys import WORKERS_KEY
from tests.api.conftest import served

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

MAX_EXAMPLES = 25  # per operation: ~20 operations stay well under a minute


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # A Redis server of its own: no other test (or test session) flushes it mid-run.
    with EmbeddedRedis(tmp_path_factory.mktemp("fuzz-redis")) as redis_server:
        # A worker's heartbeat, so /readyz answers 200 (its 503 is right, but is a 5xx): no
        # worker process runs; the beat is dated an hour ahead so it stays fresh meanwhile.
        redis.Redis.from_url(redis_server.url).zadd(WORKERS_KEY, {"fuzz@test": time.time() + 3600})
        app = create_app(Settings(redis_url=redis_server.url, max_upload_bytes=2_000_000,
                                  max_items_per_job=50, log_format="text"))
        with served(app) as url:
            yield url


# The schema the app serves at /openapi.json, built from the app itself at collection time
# (a fixture-loaded schema does not work with this pytest); requests go to the live server.
schema = schemathesis.openapi.from_dict(create_app(Settings(log_format="text")).openapi())


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented_and_none_is_a_server_error(case, fuzz_url):
    if case.path == "/v1/classify" and case.query:
        # No worker runs here: a wait would only sleep (POST /v1/classify tests cover it).
        case.query["wait"] = 0
    case.call_and_validate(base_url=fuzz_url, checks=CHECKS, timeout=30)
