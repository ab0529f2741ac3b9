"""The Python clients: retries that honour Retry-After (only for idempotent calls, within a
cap), typed results, and the async client having the sync one's methods and answers (against
the live stack: uvicorn + a Celery worker + Redis)."""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import time
from pathlib import Path

import httpx
import pytest

from cli.aclient import AsyncTaggerClient
from cli.client import RetryPolicy, TaggerClient, TaggerError
from cli.client_base import retry_after_s
from cli.schemas import Job, ResultItem
from tests.conftest import png_bytes

JOB = {"id": "j1", "kind": "bulk", "source": "files", "status": "queued",
       "progress": {"total": 2, "done": 0, "failed": 0, "skipped": 0},
       "created_at": "2026-01-01T00:00:00Z", "started_at": None, "finished_at": None,
       "model_version": None, "model": None, "top_k": 3, "review_threshold": None,
       "results_url": "/v1/jobs/j1/results"}


class Server:
    """A scripted server: answers in order (the last one repeats); requests kept."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers, self.requests = list(answers), []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request, request.read()))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def busy(status: int = 503, retry_after: str | None = "2") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers,
                          json={"error": {"code": "busy", "message": "try later"}})


def sync_client(server: Server, **kwargs) -> tuple[TaggerClient, list[float]]:
    slept: list[float] = []
    client = TaggerClient("http://tagger.invalid", transport=httpx.MockTransport(server),
                          sleep=slept.append, **kwargs)
    return client, slept


def test_a_get_answered_503_is_retried_after_retry_after():
    server = Server(busy(503, "2"), busy(429, "1"), httpx.Response(200, json=JOB))
    client, slept = sync_client(server)
    job = client.job("j1")
    assert isinstance(job, Job) and job.progress.total == 2 and not job.ended
    assert slept == [2.0, 1.0] and len(server.requests) == 3


def test_an_http_date_retry_after_is_honoured():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after_s(httpx.Response(503, headers={"Retry-After": when})) <= 30
    assert retry_after_s(httpx.Response(503, headers={"Retry-After": "soon"})) is None


def test_without_retry_after_the_wait_doubles():
    server = Server(busy(retry_after=None), busy(retry_after=None),
                    httpx.Response(200, json=JOB))
    client, slept = sync_client(server)
    client.job("j1")
    assert slept == [0.5, 1.0]


def test_attempts_are_capped():
    server = Server(busy(429, "1"))
    client, slept = sync_client(server, retry=RetryPolicy(attempts=3))
    with pytest.raises(TaggerError) as caught:
        client.jobs()
    assert caught.value.status == 429 and caught.value.code == "busy"
    assert len(server.requests) == 3 and slept == [1.0, 1.0]


def test_a_wait_beyond_the_budget_is_not_waited_for():
    server = Server(busy(503, "120"))
    client, slept = sync_client(server)  # 60 s of waiting at most
    with pytest.raises(TaggerError, match="try later"):
        client.cancel("j1")  # DELETE: idempotent, but the server asks for too long
    assert slept == [] and len(server.requests) == 1


def test_a_post_without_an_idempotency_key_is_never_sent_twice(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(1))
    server = Server(busy(503, "1"), httpx.Response(202, json=JOB))
    client, slept = sync_client(server)
    with pytest.raises(TaggerError) as caught:
        client.submit_files([tmp_path / "a.png"])
    assert caught.value.status == 503 and slept == [] and len(server.requests) == 1


def test_a_post_with_an_idempotency_key_is_retried_with_the_same_body(tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(2)]
    for i, path in enumerate(paths):
        path.write_bytes(png_bytes(i))
    server = Server(busy(503, "1"), httpx.Response(202, json=JOB))
    client, slept = sync_client(server)
    job = client.submit_files(paths, idempotency_key="upload-1")
    assert job.id == "j1" and slept == [1.0]
    (first, first_body), (second, second_body) = server.requests
    assert second.headers["Idempotency-Key"] == "upload-1"
    assert png_bytes(1) in second_body and len(second_body) == len(first_body)
    # Same parts, same bytes; only the multipart boundary is drawn anew.
    boundary = first.headers["Content-Type"].split("boundary=")[1].encode()
    second_boundary = second.headers["Content-Type"].split("boundary=")[1].encode()
    assert first_body.replace(boundary, b"B") == second_body.replace(second_boundary, b"B")


def test_the_async_client_retries_the_same_way():
    server = Server(busy(503, "3"), httpx.Response(200, json=JOB))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def main() -> Job:
        async with AsyncTaggerClient("http://tagger.invalid", sleep=sleep,
                                     transport=httpx.MockTransport(server)) as client:
            return await client.job("j1")

    assert asyncio.run(main()).id == "j1" and slept == [3.0]


def test_an_unreachable_server_is_status_0():
    client = TaggerClient("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(TaggerError) as caught:
        client.job("x")
    assert caught.value.status == 0 and caught.value.code == "network_error"


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_")}


def test_the_async_client_has_the_sync_clients_methods():
    sync, asyn = public_methods(TaggerClient), public_methods(AsyncTaggerClient)
    assert set(sync) - {"close"} == set(asyn) - {"aclose"}
    for name, signature in sync.items():
        if name == "close":
            continue
        assert list(signature.parameters) == list(asyn[name].parameters), name
        method = getattr(AsyncTaggerClient, name)
        assert inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method), name


def test_both_clients_tag_the_same_job_the_same_way(live_stack, tmp_path):
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(png_bytes(i))
    with TaggerClient(live_stack.url, "alice-key") as client:
        job = client.wait(client.submit_files(paths, top_k=2).id)
        expected = list(client.iter_results(job.id))
    assert job.status == "succeeded" and len(expected) == 5

    async def run() -> tuple[Job, list[ResultItem], list[str]]:
        async with AsyncTaggerClient(live_stack.url, "alice-key") as tagger:
            submitted = await tagger.submit_files(paths, top_k=2)
            events: list[str] = []
            done = await tagger.wait(submitted.id, on_update=lambda j: events.append(j.status))
            items = [item async for item in tagger.iter_results(done.id)]
            listed = [j.id async for j in tagger.iter_jobs(page_size=2)]
            assert submitted.id in listed and job.id in listed
            return done, items, events

    done, items, events = asyncio.run(run())
    assert done.status == "succeeded" and events[-1] == "succeeded"
    assert [(i.filename, i.label, i.top_k) for i in items] == [
        (i.filename, i.label, i.top_k) for i in expected]


def test_typed_results_of_models(live_stack, tmp_path: Path):
    with TaggerClient(live_stack.url, "alice-key") as client:
        page = client.models()
        assert page.active and any(m.version == page.active and m.active for m in page.items)
        assert client.model(page.active).labels == page.items[0].labels
        assert client.ready().status == "ok"
