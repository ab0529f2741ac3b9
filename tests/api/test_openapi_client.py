"""A client generated from the served schema does the service's main jobs: a user runs
openapi-python-client (the version of the `dev` extra) on `/openapi.json` and, without
touching what it wrote, submits a bulk zip job, follows it to its end, reads its results and
uploads a dataset, against the live stack (uvicorn, a real Celery worker, its own Redis).
"""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from core.labels import FASHION_MNIST_LABELS
from tests.shapes import shapes_members, zip_bytes

PACKAGE = "fashion_tagger_client"
PHOTOS = Path(__file__).resolve().parents[1] / "fixtures" / "photos"
TIMEOUT = httpx.Timeout(60.0)  # the event stream stays open until the job ends


@pytest.fixture(scope="module")
def generated(live_stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, imported as written."""
    out = tmp_path_factory.mktemp("generated")
    schema = out / "openapi.json"
    schema.write_bytes(httpx.get(f"{live_stack.url}/openapi.json").raise_for_status().content)
    config = out / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run: the code is used as generated
    # --fail-on-warning: a part of the schema the generator skips fails here, not in use.
    run = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(schema),
         "--output-path", str(out / PACKAGE), "--meta", "none", "--config", str(config),
         "--fail-on-warning"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def api(generated: ModuleType, name: str) -> Any:
    """A generated module: `api.jobs.create_job`, `models`, `types`..."""
    return importlib.import_module(f"{generated.__name__}.{name}")


def client_for(generated: ModuleType, url: str, key: str) -> Any:
    return generated.AuthenticatedClient(base_url=url, token=key, timeout=TIMEOUT)


def events(stream: str) -> list[tuple[str, dict]]:
    """(event name, JSON payload) of each event in a `text/event-stream` body."""
    found = []
    for block in stream.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if line and not line.startswith(":"))
        if fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def test_a_generated_client_submits_a_zip_follows_it_and_reads_its_results(generated,
                                                                           live_stack):
    models, types = api(generated, "models"), api(generated, "types")
    create_job, job_events = api(generated, "api.jobs.create_job"), api(
        generated, "api.results.job_events")
    get_job, get_results = api(generated, "api.jobs.get_job"), api(
        generated, "api.results.get_results")
    photos = {f"inventory/{path.name}": path.read_bytes()
              for path in sorted(PHOTOS.glob("*.jpg"))}
    assert len(photos) >= 5
    client = client_for(generated, live_stack.url, "alice-key")

    form = models.CreateJobForm(
        archive=types.File(payload=io.BytesIO(zip_bytes(photos)), file_name="inventory.zip",
                           mime_type="application/zip"),
        top_k=2, review_threshold=0.5)
    submitted = create_job.sync_detailed(client=client, body=form, idempotency_key="gen-1")
    assert submitted.status_code == 202, submitted.content  # 422 if the archive was lost
    job = submitted.parsed
    assert isinstance(job, models.JobPublic)
    assert (job.source, job.progress.total, job.top_k) == ("archive", len(photos), 2)

    stream = job_events.sync(client=client, job_id=job.id)  # returns when the stream ends
    assert isinstance(stream, str), stream
    seen = events(stream)
    assert seen and {name for name, _ in seen} <= {"progress", "end"}
    assert [name for name, _ in seen][-1:] == ["end"]
    end = models.JobPublic.from_dict(seen[-1][1])
    assert end.status == models.JobPublicStatus.SUCCEEDED
    assert get_job.sync(client=client, job_id=job.id).to_dict() == end.to_dict()

    page = get_results.sync(client=client, job_id=job.id, limit=100)
    assert isinstance(page, models.ResultsPage) and page.next_cursor is None
    assert [item.filename for item in page.items] == list(photos)
    for item in page.items:
        assert item.status == models.ResultItemStatus.OK, item.error
        assert item.label in FASHION_MNIST_LABELS and len(item.top_k) == 2
        assert item.top_k[0].label == item.label and item.confidence == item.top_k[0].score
        assert item.needs_review == (item.confidence < 0.5)


def test_a_generated_client_uploads_a_dataset(generated, live_stack):
    models, types = api(generated, "models"), api(generated, "types")
    create_dataset = api(generated, "api.datasets.create_dataset")
    get_dataset = api(generated, "api.datasets.get_dataset")
    client = client_for(generated, live_stack.url, "ops-key")

    form = models.CreateDatasetForm(
        archive=types.File(payload=io.BytesIO(zip_bytes(shapes_members(per_class=5))),
                           file_name="shapes.zip", mime_type="application/zip"),
        name="shapes")
    created = create_dataset.sync_detailed(client=client, body=form)
    assert created.status_code == 201, created.content
    dataset = created.parsed
    assert isinstance(dataset, models.DatasetPublic)
    assert (dataset.name, dataset.labels, dataset.total) == (
        "shapes", ["circle", "square", "triangle"], 15)
    assert [(c.label, c.count) for c in dataset.classes] == [
        ("circle", 5), ("square", 5), ("triangle", 5)]
    assert get_dataset.sync(client=client, dataset_id=dataset.id).to_dict() == dataset.to_dict()
