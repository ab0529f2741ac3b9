"""Python clients for the fashion-tagger HTTP API (docs/DESIGN.md), over httpx: TaggerClient
(sync) and AsyncTaggerClient (asyncio, cli.aclient), with the same methods.

    from cli.client import TaggerClient
    with TaggerClient("http://127.0.0.1:8000", api_key="...") as tagger:
        job = tagger.submit_files([Path("a.jpg"), Path("b.jpg")], top_k=3)
        job = tagger.wait(job.id)
        for item in tagger.iter_results(job.id):
            print(item.filename, item.label)

    async with AsyncTaggerClient(server, api_key) as tagger:
        job = await tagger.wait((await tagger.submit_archive(Path("inventory.zip"))).id)

Results are typed (cli.schemas: Job, ResultItem, Model...). Every error answer becomes a
`TaggerError` carrying the API's `{"error": {code, message}}`. Idempotent calls (GET, DELETE,
and POSTs sent with an Idempotency-Key) answered 429 or 503 are retried after the server's
`Retry-After` (RetryPolicy: at most 4 attempts, 60 s of waiting). Imports neither torch nor
anything of the service: scripts can use it with `pip install 'fashion-tagger[client]'`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

from cli import client_base as base
from cli.aclient import AsyncTaggerClient
from cli.client_base import (
    MAX_PARTS,
    NO_RETRY,
    Call,
    JobWait,
    RetryPolicy,
    TaggerError,
    is_archive,
    parse_sse,
)
from cli.schemas import (
    TERMINAL,
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

__all__ = ["MAX_PARTS", "NO_RETRY", "TERMINAL", "AsyncTaggerClient", "RetryPolicy",
           "TaggerClient", "TaggerError", "is_archive", "parse_sse"]


class TaggerClient:
    def __init__(self, server: str, api_key: str | None = None, timeout_s: float = 60.0,
                 transport: httpx.BaseTransport | None = None,
                 retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=server.rstrip("/"), headers=headers,
                                 timeout=httpx.Timeout(timeout_s, connect=10.0),
                                 transport=transport)
        self.retry, self._sleep = retry or RetryPolicy(), sleep

    def __enter__(self) -> TaggerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- sending ---------------------------------------------------------------------------------

    def send(self, call: Call, stream: bool = False) -> httpx.Response:
        """The answer to `call`, retried per self.retry; an error answer raises TaggerError.
        With `stream`, the body is left unread (the caller closes the response)."""
        attempt, waited = 1, 0.0
        while True:
            try:
                request = self.http.build_request(call.method, call.path, **call.kwargs())
                response = self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise TaggerError(0, "network_error",
                                  f"cannot reach {self.http.base_url}: {exc}") from exc
            if response.is_success:
                return response
            response.read()
            response.close()
            delay = self.retry.delay(call, response, attempt, waited)
            if delay is None:
                raise base.error_from(response)
            self._sleep(delay)
            waited += delay
            attempt += 1
            call.rewind()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any other request: `kwargs` as Call's fields (params, json, data, files, headers)."""
        return self.send(Call(method, path, **kwargs))

    def _json(self, call: Call) -> Any:
        return self.send(call).json()

    @contextmanager
    def _stream(self, path: str, params: dict | None = None) -> Iterator[httpx.Response]:
        """The streamed answer; a connection lost mid-way raises TaggerError (status 0)."""
        response = self.send(Call("GET", path, params=params), stream=True)
        try:
            yield response
        except httpx.TransportError as exc:
            raise TaggerError(0, "network_error",
                              f"connection to {self.http.base_url} failed: {exc}") from exc
        finally:
            response.close()

    # -- probes ------------------------------------------------------------------------------

    def ready(self) -> Health:
        return Health.model_validate(self._json(Call("GET", "/readyz")))

    # -- tagging -----------------------------------------------------------------------------

    def classify(self, image: Path | bytes, wait: float = 0, top_k: int = 3,
                 review_threshold: float | None = None, filename: str | None = None,
                 idempotency_key: str | None = None) -> ClassifyJob:
        """One image; `result` is set when it was tagged within `wait` seconds."""
        data = image.read_bytes() if isinstance(image, Path) else image
        name = filename or (image.name if isinstance(image, Path) else "image")
        return ClassifyJob.model_validate(self._json(Call(
            "POST", "/v1/classify", params={"wait": wait},
            data=base.options(top_k, review_threshold),
            files={"file": (name, data, base.mime(name))},
            headers=base.idempotency(idempotency_key),
            timeout=httpx.Timeout(wait + 60, connect=10.0))))

    def submit_files(self, paths: list[Path], top_k: int = 3,
                     review_threshold: float | None = None, callback_url: str | None = None,
                     model: str | None = None, idempotency_key: str | None = None,
                     deadline_s: int | None = None) -> Job:
        """Images as `files` parts, or as one zip when there are more than MAX_PARTS."""
        form = base.options(top_k, review_threshold, callback_url, model, deadline_s)
        with base.file_parts(paths) as parts:
            return self._submit(form, parts, idempotency_key)

    def submit_archive(self, path: Path, top_k: int = 3, review_threshold: float | None = None,
                       callback_url: str | None = None, model: str | None = None,
                       idempotency_key: str | None = None, deadline_s: int | None = None
                       ) -> Job:
        form = base.options(top_k, review_threshold, callback_url, model, deadline_s)
        with base.single_part("archive", path) as parts:
            return self._submit(form, parts, idempotency_key)

    def submit_manifest(self, path: Path, top_k: int = 3,
                        review_threshold: float | None = None, callback_url: str | None = None,
                        model: str | None = None, idempotency_key: str | None = None,
                        deadline_s: int | None = None) -> Job:
        """A CSV (item_id,url) or JSONL catalogue of image URLs."""
        form = base.options(top_k, review_threshold, callback_url, model, deadline_s)
        with base.single_part("manifest", path, "text/plain") as parts:
            return self._submit(form, parts, idempotency_key)

    def _submit(self, form: dict[str, str], parts: Any, idempotency_key: str | None) -> Job:
        return Job.model_validate(self._json(Call(
            "POST", "/v1/jobs", data=form, files=parts,
            headers=base.idempotency(idempotency_key), timeout=base.UPLOAD_TIMEOUT)))

    # -- jobs ----------------------------------------------------------------------------------

    def jobs(self, limit: int = 20, cursor: str | None = None) -> JobsPage:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        return JobsPage.model_validate(self._json(Call("GET", "/v1/jobs", params=params)))

    def iter_jobs(self, page_size: int = 100) -> Iterator[Job]:
        cursor = None
        while True:
            page = self.jobs(page_size, cursor)
            yield from page.items
            if not (cursor := page.next_cursor):
                return

    def job(self, job_id: str) -> Job:
        return Job.model_validate(self._json(Call("GET", f"/v1/jobs/{job_id}")))

    def cancel(self, job_id: str) -> Job:
        return Job.model_validate(self._json(Call("DELETE", f"/v1/jobs/{job_id}")))

    def results(self, job_id: str, cursor: int = 0, limit: int = 100) -> ResultsPage:
        return ResultsPage.model_validate(self._json(Call(
            "GET", f"/v1/jobs/{job_id}/results", params={"cursor": cursor, "limit": limit})))

    def iter_results(self, job_id: str, page_size: int = 1000) -> Iterator[ResultItem]:
        cursor: int | None = 0
        while cursor is not None:
            page = self.results(job_id, cursor, page_size)
            yield from page.items
            cursor = page.next_cursor

    def export(self, job_id: str, out: IO[bytes], fmt: str = "csv") -> int:
        """Stream every finished item as CSV or JSONL into `out`; returns the bytes written."""
        return self._download(f"/v1/jobs/{job_id}/results", {"format": fmt}, out)

    def _download(self, path: str, params: dict[str, str], out: IO[bytes]) -> int:
        written = 0
        with self._stream(path, params) as response:
            for block in response.iter_bytes():
                out.write(block)
                written += len(block)
        return written

    def events(self, job_id: str) -> Iterator[tuple[str, Job]]:
        """(`progress` | `end`, job) as the server streams them, until the job ends."""
        for name, data in self._events(f"/v1/jobs/{job_id}/events"):
            yield name, Job.model_validate(data)

    def _events(self, path: str) -> Iterator[tuple[str, Any]]:
        with self._stream(path) as response:
            yield from parse_sse(response.iter_lines())

    def wait(self, job_id: str, on_update: Callable[[Job], None] | None = None,
             timeout_s: float | None = None, poll_s: float = 1.0) -> Job:
        """Follow the job to its end (its event stream; polling if the stream breaks off)."""
        rule = JobWait(job_id, on_update, timeout_s)
        try:
            for _, job in self.events(job_id):
                if rule.ended(job):
                    return job
        except TaggerError as exc:
            if not rule.polling_helps(exc):
                raise
        while not rule.ended(job := self.job(job_id)):
            time.sleep(poll_s)
        return job

    # -- training, datasets, models --------------------------------------------------------

    def create_training_job(self, **params: Any) -> TrainingJob:
        """dataset, recipe, arch, epochs, batch_size, lr, augment, seed, max_train_items,
        init_from, activate ("never" | "if_better" | "always"); None values are left out."""
        body = {k: v for k, v in params.items() if v is not None}
        return TrainingJob.model_validate(self._json(Call("POST", "/v1/training-jobs",
                                                          json=body)))

    def training_jobs(self) -> TrainingJobsPage:
        return TrainingJobsPage.model_validate(self._json(Call("GET", "/v1/training-jobs")))

    def training_job(self, job_id: str) -> TrainingJob:
        return TrainingJob.model_validate(self._json(Call("GET",
                                                          f"/v1/training-jobs/{job_id}")))

    def training_events(self, job_id: str) -> Iterator[tuple[str, TrainingJob]]:
        for name, data in self._events(f"/v1/training-jobs/{job_id}/events"):
            yield name, TrainingJob.model_validate(data)

    def cancel_training_job(self, job_id: str) -> TrainingJob:
        return TrainingJob.model_validate(self._json(Call("DELETE",
                                                          f"/v1/training-jobs/{job_id}")))

    def training_artifact(self, job_id: str, name: str) -> bytes:
        return self.send(Call("GET", f"/v1/training-jobs/{job_id}/artifacts/{name}")).content

    def upload_dataset(self, path: Path, name: str | None = None) -> Dataset:
        """A zip of one folder per class."""
        with base.single_part("archive", path, "application/zip") as parts:
            return Dataset.model_validate(self._json(Call(
                "POST", "/v1/datasets", data={"name": name} if name else None, files=parts,
                timeout=base.UPLOAD_TIMEOUT)))

    def datasets(self) -> DatasetsPage:
        return DatasetsPage.model_validate(self._json(Call("GET", "/v1/datasets")))

    def dataset(self, dataset_id: str) -> Dataset:
        return Dataset.model_validate(self._json(Call("GET", f"/v1/datasets/{dataset_id}")))

    def models(self) -> ModelsPage:
        return ModelsPage.model_validate(self._json(Call("GET", "/v1/models")))

    def model(self, version: str) -> Model:
        return Model.model_validate(self._json(Call("GET", f"/v1/models/{version}")))

    def activate_model(self, version: str, force: bool = False) -> Model:
        """Operator keys only; `force`: even if its labels differ from the active version's."""
        return Model.model_validate(self._json(Call(
            "POST", f"/v1/models/{version}/activate", params={"force": "true"} if force else None)))

    def download_model(self, version: str, out: IO[bytes], fmt: str = "safetensors") -> int:
        return self._download(f"/v1/models/{version}/download", {"format": fmt}, out)
