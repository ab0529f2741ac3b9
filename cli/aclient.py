"""AsyncTaggerClient: cli.client.TaggerClient's methods, for asyncio (httpx.AsyncClient).

Same calls, same typed results, same errors and retry rule (cli.client_base); generators
(`iter_jobs`, `iter_results`, `events`) are async generators. Files to upload are read with
ordinary blocking reads, like httpx does for file objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import httpx

from cli import client_base as base
from cli.client_base import Call, JobWait, RetryPolicy, SseParser, TaggerError
from cli.schemas import (
    ClassifyJob,
    Dataset,
    DatasetsPage,
    Health,
    Job,
    JobsPage,
    Model,
    ModelsPage,
    ResultItem,
    ResultsPage,
    TrainingJob,
    TrainingJobsPage,
)


class AsyncTaggerClient:
    def __init__(self, server: str, api_key: str | None = None, timeout_s: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None,
                 retry: RetryPolicy | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.AsyncClient(base_url=server.rstrip("/"), headers=headers,
                                      timeout=httpx.Timeout(timeout_s, connect=10.0),
                                      transport=transport)
        self.retry, self._sleep = retry or RetryPolicy(), sleep

    async def __aenter__(self) -> AsyncTaggerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- sending ---------------------------------------------------------------------------------

    async def send(self, call: Call, stream: bool = False) -> httpx.Response:
        """As TaggerClient.send."""
        attempt, waited = 1, 0.0
        while True:
            try:
                request = self.http.build_request(call.method, call.path, **call.kwargs())
                response = await self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise TaggerError(0, "network_error",
                                  f"cannot reach {self.http.base_url}: {exc}") from exc
            if response.is_success:
                return response
            await response.aread()
            await response.aclose()
            delay = self.retry.delay(call, response, attempt, waited)
            if delay is None:
                raise base.error_from(response)
            await self._sleep(delay)
            waited += delay
            attempt += 1
            call.rewind()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.send(Call(method, path, **kwargs))

    async def _json(self, call: Call) -> Any:
        return (await self.send(call)).json()

    @asynccontextmanager
    async def _stream(self, path: str, params: dict | None = None
                      ) -> AsyncIterator[httpx.Response]:
        response = await self.send(Call("GET", path, params=params), stream=True)
        try:
            yield response
        except httpx.TransportError as exc:
            raise TaggerError(0, "network_error",
                              f"connection to {self.http.base_url} failed: {exc}") from exc
        finally:
            await response.aclose()

    # -- probes ------------------------------------------------------------------------------

    async def ready(self) -> Health:
        return Health.model_validate(await self._json(Call("GET", "/readyz")))

    # -- tagging -----------------------------------------------------------------------------

    async def classify(self, image: Path | bytes, wait: float = 0, top_k: int = 3,
                       review_threshold: float | None = None, filename: str | None = None,
                       idempotency_key: str | None = None) -> ClassifyJob:
        data = image.read_bytes() if isinstance(image, Path) else image
        name = filename or (image.name if isinstance(image, Path) else "image")
        return ClassifyJob.model_validate(await self._json(Call(
            "POST", "/v1/classify", params={"wait": wait},
            data=base.options(top_k, review_threshold),
            files={"file": (name, data, base.mime(name))},
            headers=base.idempotency(idempotency_key),
            timeout=httpx.Timeout(wait + 60, connect=10.0))))

    async def submit_files(self, paths: list[Path], top_k: int = 3,
                           review_threshold: float | None = None,
                           callback_url: str | None = None, model: str | None = None,
                           idempotency_key: str | None = None, deadline_s: int | None = None
                           ) -> Job:
        form = base.options(top_k, review_threshold, callback_url, model, deadline_s)
        with base.file_parts(paths) as parts:
            return await self._submit(form, parts, idempotency_key)

    async def submit_archive(self, path: Path, top_k: int = 3,
                             review_threshold: float | None = None,
                             callback_url: str | None = None, model: str | None = None,
                             idempotency_key: str | None = None,
                             deadline_s: int | None = None) -> Job:
        form = base.options(top_k, review_threshold, callback_url, model, deadline_s)
        with base.single_part("archive", path) as parts:
            return await self._submit(form, parts, idempotency_key)

    async def submit_manifest(self, path: Path, top_k: int = 3,
                              review_threshold: float | None = None,
                              callback_url: str | None = None, model: str | None = None,
                              idempotency_key: str | None = None,
                              deadline_s: int | None = None) -> Job:
        form = base.options(top_k, review_threshold, callback_url, model, deadline_s)
        with base.single_part("manifest", path, "text/plain") as parts:
            return await self._submit(form, parts, idempotency_key)

    async def _submit(self, form: dict[str, str], parts: Any, idempotency_key: str | None
                      ) -> Job:
        return Job.model_validate(await self._json(Call(
            "POST", "/v1/jobs", data=form, files=parts,
            headers=base.idempotency(idempotency_key), timeout=base.UPLOAD_TIMEOUT)))

    # -- jobs ----------------------------------------------------------------------------------

    async def jobs(self, limit: int = 20, cursor: str | None = None) -> JobsPage:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        return JobsPage.model_validate(await self._json(Call("GET", "/v1/jobs",
                                                             params=params)))

    async def iter_jobs(self, page_size: int = 100) -> AsyncIterator[Job]:
        cursor = None
        while True:
            page = await self.jobs(page_size, cursor)
            for job in page.items:
                yield job
            if not (cursor := page.next_cursor):
                return

    async def job(self, job_id: str) -> Job:
        return Job.model_validate(await self._json(Call("GET", f"/v1/jobs/{job_id}")))

    async def cancel(self, job_id: str) -> Job:
        return Job.model_validate(await self._json(Call("DELETE", f"/v1/jobs/{job_id}")))

    async def results(self, job_id: str, cursor: int = 0, limit: int = 100) -> ResultsPage:
        return ResultsPage.model_validate(await self._json(Call(
            "GET", f"/v1/jobs/{job_id}/results", params={"cursor": cursor, "limit": limit})))

    async def iter_results(self, job_id: str, page_size: int = 1000
                           ) -> AsyncIterator[ResultItem]:
        cursor: int | None = 0
        while cursor is not None:
            page = await self.results(job_id, cursor, page_size)
            for item in page.items:
                yield item
            cursor = page.next_cursor

    async def export(self, job_id: str, out: IO[bytes], fmt: str = "csv") -> int:
        return await self._download(f"/v1/jobs/{job_id}/results", {"format": fmt}, out)

    async def _download(self, path: str, params: dict[str, str], out: IO[bytes]) -> int:
        written = 0
        async with self._stream(path, params) as response:
            async for block in response.aiter_bytes():
                out.write(block)
                written += len(block)
        return written

    async def events(self, job_id: str) -> AsyncIterator[tuple[str, Job]]:
        async for name, data in self._events(f"/v1/jobs/{job_id}/events"):
            yield name, Job.model_validate(data)

    async def _events(self, path: str) -> AsyncIterator[tuple[str, Any]]:
        parser = SseParser()
        async with self._stream(path) as response:
            async for line in response.aiter_lines():
                if event := parser.feed(line):
                    yield event
        if event := parser.close():
            yield event

    async def wait(self, job_id: str, on_update: Callable[[Job], None] | None = None,
                   timeout_s: float | None = None, poll_s: float = 1.0) -> Job:
        """Follow the job to its end (its event stream; polling if the stream breaks off)."""
        rule = JobWait(job_id, on_update, timeout_s)
        try:
            async for _, job in self.events(job_id):
                if rule.ended(job):
                    return job
        except TaggerError as exc:
            if not rule.polling_helps(exc):
                raise
        while not rule.ended(job := await self.job(job_id)):
            await asyncio.sleep(poll_s)
        return job

    # -- training, datasets, models --------------------------------------------------------

    async def create_training_job(self, **params: Any) -> TrainingJob:
        body = {k: v for k, v in params.items() if v is not None}
        return TrainingJob.model_validate(await self._json(Call("POST", "/v1/training-jobs",
                                                                json=body)))

    async def training_jobs(self) -> TrainingJobsPage:
        return TrainingJobsPage.model_validate(await self._json(Call("GET",
                                                                     "/v1/training-jobs")))

    async def training_job(self, job_id: str) -> TrainingJob:
        return TrainingJob.model_validate(await self._json(Call(
            "GET", f"/v1/training-jobs/{job_id}")))

    async def training_events(self, job_id: str) -> AsyncIterator[tuple[str, TrainingJob]]:
        async for name, data in self._events(f"/v1/training-jobs/{job_id}/events"):
            yield name, TrainingJob.model_validate(data)

    async def cancel_training_job(self, job_id: str) -> TrainingJob:
        return TrainingJob.model_validate(await self._json(Call(
            "DELETE", f"/v1/training-jobs/{job_id}")))

    async def training_artifact(self, job_id: str, name: str) -> bytes:
        return (await self.send(Call("GET", f"/v1/training-jobs/{job_id}/artifacts/{name}"))
                ).content

    async def upload_dataset(self, path: Path, name: str | None = None) -> Dataset:
        with base.single_part("archive", path, "application/zip") as parts:
            return Dataset.model_validate(await self._json(Call(
                "POST", "/v1/datasets", data={"name": name} if name else None, files=parts,
                timeout=base.UPLOAD_TIMEOUT)))

    async def datasets(self) -> DatasetsPage:
        return DatasetsPage.model_validate(await self._json(Call("GET", "/v1/datasets")))

    async def dataset(self, dataset_id: str) -> Dataset:
        return Dataset.model_validate(await self._json(Call("GET",
                                                            f"/v1/datasets/{dataset_id}")))

    async def models(self) -> ModelsPage:
        return ModelsPage.model_validate(await self._json(Call("GET", "/v1/models")))

    async def model(self, version: str) -> Model:
        return Model.model_validate(await self._json(Call("GET", f"/v1/models/{version}")))

    async def activate_model(self, version: str, force: bool = False) -> Model:
        """Operator keys only; `force`: even if its labels differ from the active version's."""
        return Model.model_validate(await self._json(Call(
            "POST", f"/v1/models/{version}/activate", params={"force": "true"} if force else None)))

    async def download_model(self, version: str, out: IO[bytes], fmt: str = "safetensors"
                             ) -> int:
        return await self._download(f"/v1/models/{version}/download", {"format": fmt}, out)
