"""A small Python client for the fashion-tagger HTTP API (docs/DESIGN.md), over httpx.

    from cli.client import TaggerClient
    with TaggerClient("http://127.0.0.1:8000", api_key="...") as tagger:
        job = tagger.submit_files(["a.jpg", "b.jpg"], top_k=3)
        job = tagger.wait(job["id"])
        for item in tagger.iter_results(job["id"]):
            print(item["filename"], item["label"])

Every error answer becomes a `TaggerError` carrying the API's `{"error": {code, message}}`.
Imports neither torch nor anything of the service: scripts can use it on their own.
"""

from __future__ import annotations

import json
import mimetypes
import os.path
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz")
TERMINAL = ("succeeded", "failed", "cancelled")
# Above this many files, submit_files packs them into one zip (stored, not compressed: photos
# are compressed already) instead of one multipart part each: one open file, not thousands.
MAX_PARTS = 256

Job = dict[str, Any]


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


def _raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    response.read()  # a streamed answer has not been read yet
    code, message = f"http_{response.status_code}", response.reason_phrase or "error"
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        pass  # not our JSON error shape (a proxy's page): the status line says enough
    raise TaggerError(response.status_code, code, message)


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """Server-Sent Events lines -> (event name, JSON data) per event."""
    name, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith(":"):
            continue  # keep-alive comment
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
    if data:
        yield name, json.loads("\n".join(data))


class TaggerClient:
    def __init__(self, server: str, api_key: str | None = None, timeout_s: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=server.rstrip("/"), headers=headers,
                                 timeout=httpx.Timeout(timeout_s, connect=10.0),
                                 transport=transport)

    def __enter__(self) -> TaggerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise TaggerError(0, "network_error",
                              f"cannot reach {self.http.base_url}: {exc}") from exc
        _raise_for_error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    @contextmanager
    def _stream(self, path: str, params: dict | None = None) -> Iterator[httpx.Response]:
        """The streamed answer; an error answer raises TaggerError before anything is read,
        a connection lost mid-way raises TaggerError with status 0."""
        try:
            with self.http.stream("GET", path, params=params) as response:
                _raise_for_error(response)
                yield response
        except httpx.TransportError as exc:
            raise TaggerError(0, "network_error",
                              f"connection to {self.http.base_url} failed: {exc}") from exc

    # -- probes ------------------------------------------------------------------------------

    def ready(self) -> dict:
        return self._json("GET", "/readyz")

    # -- tagging -----------------------------------------------------------------------------

    def classify(self, image: Path | bytes, wait: float = 0, top_k: int = 3,
                 review_threshold: float | None = None, filename: str | None = None) -> Job:
        """One image; `result` is set when it was tagged within `wait` seconds."""
        data = image.read_bytes() if isinstance(image, Path) else image
        name = filename or (image.name if isinstance(image, Path) else "image")
        return self._json("POST", "/v1/classify", params={"wait": wait},
                          data=_options(top_k, review_threshold, None, None),
                          files={"file": (name, data, _mime(name))},
                          timeout=httpx.Timeout(wait + 60, connect=10.0))

    def submit_files(self, paths: list[Path], top_k: int = 3,
                     review_threshold: float | None = None, callback_url: str | None = None,
                     model: str | None = None, idempotency_key: str | None = None) -> Job:
        """Images as `files` parts (each keeps its file name), or as one zip when there are
        more than MAX_PARTS (then each keeps its path relative to their common folder)."""
        if not paths:
            raise ValueError("no files to submit")
        options = _options(top_k, review_threshold, callback_url, model)
        if len(paths) > MAX_PARTS:
            with tempfile.TemporaryFile() as packed:
                _zip_into(packed, paths)
                packed.seek(0)
                return self._submit(options, {"archive": ("images.zip", packed,
                                                          "application/zip")}, idempotency_key)
        with ExitStack() as stack:
            parts = [("files", (p.name, stack.enter_context(p.open("rb")), _mime(p.name)))
                     for p in paths]
            return self._submit(options, parts, idempotency_key)

    def submit_archive(self, path: Path, top_k: int = 3, review_threshold: float | None = None,
                       callback_url: str | None = None, model: str | None = None,
                       idempotency_key: str | None = None) -> Job:
        with path.open("rb") as archive:
            return self._submit(_options(top_k, review_threshold, callback_url, model),
                                {"archive": (path.name, archive, _mime(path.name))},
                                idempotency_key)

    def submit_manifest(self, path: Path, top_k: int = 3,
                        review_threshold: float | None = None, callback_url: str | None = None,
                        model: str | None = None, idempotency_key: str | None = None) -> Job:
        """A CSV (item_id,url) or JSONL catalogue of image URLs."""
        with path.open("rb") as manifest:
            return self._submit(_options(top_k, review_threshold, callback_url, model),
                                {"manifest": (path.name, manifest, "text/plain")},
                                idempotency_key)

    def _submit(self, options: dict, files: Any, idempotency_key: str | None) -> Job:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        # An upload may be large: no read timeout while the server takes it in.
        return self._json("POST", "/v1/jobs", data=options, files=files, headers=headers,
                          timeout=httpx.Timeout(None, connect=10.0))

    # -- jobs ----------------------------------------------------------------------------------

    def jobs(self, limit: int = 20, cursor: str | None = None) -> dict:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._json("GET", "/v1/jobs", params=params)

    def iter_jobs(self, page_size: int = 100) -> Iterator[Job]:
        cursor = None
        while True:
            page = self.jobs(page_size, cursor)
            yield from page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def job(self, job_id: str) -> Job:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str) -> Job:
        return self._json("DELETE", f"/v1/jobs/{job_id}")

    def results(self, job_id: str, cursor: int = 0, limit: int = 100) -> dict:
        return self._json("GET", f"/v1/jobs/{job_id}/results",
                          params={"cursor": cursor, "limit": limit})

    def iter_results(self, job_id: str, page_size: int = 1000) -> Iterator[dict]:
        cursor: int | None = 0
        while cursor is not None:
            page = self.results(job_id, cursor, page_size)
            yield from page["items"]
            cursor = page["next_cursor"]

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
        return self._events(f"/v1/jobs/{job_id}/events")

    def _events(self, path: str) -> Iterator[tuple[str, Any]]:
        with self._stream(path) as response:
            yield from parse_sse(response.iter_lines())

    def wait(self, job_id: str, on_update: Callable[[Job], None] | None = None,
             timeout_s: float | None = None, poll_s: float = 1.0) -> Job:
        """Follow the job to its end (its event stream; polling if the stream breaks off)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s

        def ended(job: Job) -> bool:
            if on_update:
                on_update(job)
            if job["status"] in TERMINAL:
                return True
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']}")
            return False

        try:
            for _, job in self.events(job_id):
                if ended(job):
                    return job
        except TaggerError as exc:
            if exc.status != 0:
                raise  # an answer (404...), not a broken stream: polling would not help
        while not ended(job := self.job(job_id)):
            time.sleep(poll_s)
        return job

    # -- training, datasets, models --------------------------------------------------------

    def create_training_job(self, **params: Any) -> Job:
        """dataset, recipe, arch, epochs, batch_size, lr, augment, seed, max_train_items, init_from,
        activate ("never" | "if_better" | "always"); None values are left out."""
        body = {k: v for k, v in params.items() if v is not None}
        return self._json("POST", "/v1/training-jobs", json=body)

    def training_job(self, job_id: str) -> Job:
        return self._json("GET", f"/v1/training-jobs/{job_id}")

    def training_events(self, job_id: str) -> Iterator[tuple[str, Job]]:
        return self._events(f"/v1/training-jobs/{job_id}/events")

    def cancel_training_job(self, job_id: str) -> Job:
        return self._json("DELETE", f"/v1/training-jobs/{job_id}")

    def training_artifact(self, job_id: str, name: str) -> bytes:
        return self.request("GET", f"/v1/training-jobs/{job_id}/artifacts/{name}").content

    def upload_dataset(self, path: Path, name: str | None = None) -> dict:
        """A zip of one folder per class."""
        with path.open("rb") as archive:
            data = {"name": name} if name else None
            return self._json("POST", "/v1/datasets", data=data,
                              files={"archive": (path.name, archive, "application/zip")},
                              timeout=httpx.Timeout(None, connect=10.0))

    def models(self) -> list[dict]:
        body = self._json("GET", "/v1/models")
        return body if isinstance(body, list) else body.get("items", body.get("models", []))

    def model(self, version: str) -> dict:
        return self._json("GET", f"/v1/models/{version}")

    def activate_model(self, version: str) -> dict:
        return self._json("POST", f"/v1/models/{version}/activate")

    def download_model(self, version: str, out: IO[bytes], fmt: str = "safetensors") -> int:
        return self._download(f"/v1/models/{version}/download", {"format": fmt}, out)


def _options(top_k: int, review_threshold: float | None, callback_url: str | None,
             model: str | None) -> dict[str, str]:
    options = {"top_k": str(top_k)}
    for name, value in (("review_threshold", review_threshold),
                        ("callback_url", callback_url), ("model", model)):
        if value is not None:
            options[name] = str(value)
    return options


def _mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _zip_into(out: IO[bytes], paths: list[Path]) -> None:
    root = Path(_common_parent(paths))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for path in paths:
            archive.write(path, path.resolve().relative_to(root).as_posix())


def _common_parent(paths: list[Path]) -> str:
    return os.path.commonpath([str(p.resolve().parent) for p in paths])
