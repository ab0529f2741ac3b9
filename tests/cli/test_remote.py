"""The client commands (`submit`, `jobs`, `status`, `results`, `cancel`) against a real running
stack (uvicorn + Celery worker + Redis), and the client's error handling."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.client import TaggerClient, TaggerError, parse_sse
from cli.main import app
from cli.redis_server import free_port
from cli.remote import run_remote_training
from core.settings import get_settings
from tests.conftest import png_bytes

runner = CliRunner()
JOB = {"id": "j", "kind": "bulk", "source": "archive", "status": "queued",
       "progress": {"total": 3, "done": 0, "failed": 0, "skipped": 0},
       "created_at": "2026-01-01T00:00:00Z", "started_at": None, "finished_at": None,
       "model_version": None, "model": None, "top_k": 3, "review_threshold": None,
       "results_url": "/v1/jobs/j/results"}


def tagger(stack, *args: str, key: str = "alice-key"):
    return runner.invoke(app, [*args, "--server", stack.url, "--api-key", key])


def write_images(folder: Path, count: int, start: int = 0) -> dict[str, bytes]:
    images = {}
    for i in range(start, start + count):
        sub = folder / ("shoes" if i % 2 else "bags")
        sub.mkdir(parents=True, exist_ok=True)
        images[f"img{i:03d}.png"] = png_bytes(i)
        (sub / f"img{i:03d}.png").write_bytes(images[f"img{i:03d}.png"])
    return images


def test_submit_a_folder_waits_and_writes_the_csv(live_stack, shipped_predictor, tmp_path):
    images = write_images(tmp_path / "photos", 12)
    (tmp_path / "photos" / "notes.txt").write_text("not an image: left out")
    out = tmp_path / "out" / "tags.csv"
    result = tagger(live_stack, "submit", str(tmp_path / "photos"), "--wait", "--out", str(out),
                    "--top-k", "2")
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip().splitlines()[0]
    assert f"job {job_id} succeeded: 12 tagged, 0 failed of 12" in result.stderr
    rows = {row["filename"]: row for row in csv.DictReader(out.open())}
    assert set(rows) == set(images)
    expected = shipped_predictor.predict_images(list(images.values()), top_k=2)
    for name, prediction in zip(images, expected, strict=True):
        assert rows[name]["label"] == prediction.label
        assert len(json.loads(rows[name]["top_k"])) == 2


def test_an_archive_then_status_jobs_and_results(live_stack, tmp_path):
    archive = tmp_path / "batch.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(5):
            z.writestr(f"a/{i}.png", png_bytes(i))
        z.writestr("broken.png", b"\x89PNG not really")
    submitted = tagger(live_stack, "submit", str(archive), "--wait")
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip()

    status = tagger(live_stack, "status", job_id)
    assert status.exit_code == 0 and f"job {job_id} succeeded: 5 tagged, 1 failed" in status.stdout
    as_json = json.loads(tagger(live_stack, "status", job_id, "--json").stdout)
    assert as_json["progress"] == {"total": 6, "done": 5, "failed": 1, "skipped": 0}
    listed = tagger(live_stack, "jobs", "--limit", "100")
    assert listed.exit_code == 0 and job_id in listed.stdout
    page = json.loads(tagger(live_stack, "jobs", "--limit", "100", "--json").stdout)
    assert job_id in [job["id"] for job in page["items"]] and "next_cursor" in page
    lines = tagger(live_stack, "results", job_id, "--format", "jsonl").stdout.splitlines()
    items = {item["filename"]: item for item in map(json.loads, lines)}
    assert items["broken.png"]["status"] == "error" and items["a/0.png"]["status"] == "ok"
    exported = tagger(live_stack, "results", job_id, "--format", "csv", "--out",
                      str(tmp_path / "r.csv"))
    assert exported.exit_code == 0 and len(list(csv.DictReader((tmp_path / "r.csv").open()))) == 6
    # Another tenant sees no such job: a clear message and exit code 1.
    other = tagger(live_stack, "status", job_id, key="bob-key")
    assert other.exit_code == 1 and "job not found (not_found, HTTP 404)" in other.stderr


def test_cancel_skips_the_rest_and_a_finished_job_cannot_be_cancelled(live_stack, tmp_path):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(2000):  # 250 chunks: far more than the worker does before the cancel
            z.writestr(f"{i:04d}.png", png_bytes(i % 81))
    job_id = tagger(live_stack, "submit", str(archive)).stdout.strip()
    cancelled = tagger(live_stack, "cancel", job_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert f"job {job_id} cancelled" in cancelled.stderr and "skipped" in cancelled.stderr

    write_images(tmp_path / "few", 2)
    done = tagger(live_stack, "submit", str(tmp_path / "few"), "--wait")
    assert done.exit_code == 0, done.output
    again = tagger(live_stack, "cancel", done.stdout.strip())
    assert again.exit_code == 1
    assert again.stderr.strip() == ("error: job already succeeded; nothing to cancel"
                                    " (job_finished, HTTP 409)")


def test_errors_are_one_line_and_exit_code_1(live_stack, tmp_path):
    wrong_key = tagger(live_stack, "jobs", key="nope")
    assert wrong_key.exit_code == 1
    assert wrong_key.stderr.strip() == "error: invalid API key (unauthorized, HTTP 401)"
    down = runner.invoke(app, ["jobs", "--server", f"http://127.0.0.1:{free_port()}"])
    assert down.exit_code == 1 and "error: cannot reach" in down.stderr
    manifest = tmp_path / "catalogue.csv"
    manifest.write_text("sku,link\nA,http://example.com/a.png\n")
    rejected = tagger(live_stack, "submit", "--manifest", str(manifest))
    assert rejected.exit_code == 1
    assert rejected.stderr.strip() == ("error: line 1: the CSV header must name the columns"
                                       " item_id and url (invalid_manifest, HTTP 422)")
    bad_format = tagger(live_stack, "results", "x", "--format", "xml")
    assert bad_format.exit_code == 2 and "choose one of: csv, jsonl" in bad_format.output
    nothing = tagger(live_stack, "submit", "no-such-folder")
    assert nothing.exit_code == 2 and "no such file or folder" in nothing.output
    for result in (wrong_key, down, rejected):
        assert "Traceback" not in result.output


def test_server_and_key_come_from_the_environment(live_stack, monkeypatch):
    monkeypatch.setenv("TAGGER_SERVER_URL", live_stack.url)
    monkeypatch.setenv("TAGGER_API_KEY", "bob-key")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["jobs"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output


# -- the client on its own (no server) -------------------------------------------------------


def test_server_sent_events_are_parsed_by_event():
    lines = ["event: progress", 'data: {"a": 1}', "", ": keep-alive", "",
             "event: end", 'data: {"a":', "data: 2}", ""]
    assert list(parse_sse(lines)) == [("progress", {"a": 1}), ("end", {"a": 2})]


def test_an_answer_that_is_not_our_error_shape_still_gives_a_clear_error():
    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    with TaggerClient("http://tagger.invalid", transport=httpx.MockTransport(proxy)) as client:
        with pytest.raises(TaggerError) as caught:
            client.jobs()
    assert str(caught.value) == "Bad Gateway (http_502, HTTP 502)"


def test_many_files_are_sent_as_one_zip(tmp_path, monkeypatch):
    sent = {}

    def server(request: httpx.Request) -> httpx.Response:
        sent["body"] = request.read()
        return httpx.Response(202, json=JOB)

    monkeypatch.setattr("cli.client_base.MAX_PARTS", 2)
    images = write_images(tmp_path, 3)
    paths = sorted(tmp_path.rglob("*.png"))
    with TaggerClient("http://tagger.invalid", transport=httpx.MockTransport(server)) as client:
        client.submit_files(paths)
    body = sent["body"]
    assert b'name="archive"; filename="images.zip"' in body
    start = body.index(b"PK\x03\x04")
    with zipfile.ZipFile(io.BytesIO(body[start:body.rindex(b"\r\n--")])) as z:
        assert sorted(z.namelist()) == sorted(f"{p.parent.name}/{p.name}" for p in paths)
        assert z.read("shoes/img001.png") == images["img001.png"]


def test_the_client_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, cli.client, cli.remote; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_models_list_download_and_activate(live_stack, tmp_path):
    listed = tagger(live_stack, "models", "list")
    assert listed.exit_code == 0, listed.output
    assert "v1" in listed.stdout and "yes" in listed.stdout  # the seeded, active version
    for command in (["models", "list", "--json"], ["models", "--json"]):
        page = json.loads(tagger(live_stack, *command).stdout)
        assert page["active"] == "v1" and page["items"][0]["version"] == "v1", command
    for fmt, magic in (("safetensors", None), ("onnx", b"\x08")):
        out = tmp_path / f"m.{fmt}"
        got = tagger(live_stack, "models", "download", "v1", "--format", fmt, "--out", str(out))
        assert got.exit_code == 0, got.output
        data = out.read_bytes()
        assert data.startswith(magic) if magic else int.from_bytes(data[:8], "little") < len(data)
    refused = tagger(live_stack, "models", "activate", "v1")  # alice is no admin
    assert refused.exit_code == 1 and "(forbidden, HTTP 403)" in refused.stderr
    activated = tagger(live_stack, "models", "activate", "v1", key="ops-key")
    assert activated.exit_code == 0 and "model v1 is active" in activated.stderr
    missing = tagger(live_stack, "models", "activate", "v999", key="ops-key")
    assert missing.exit_code == 1 and "(not_found, HTTP 404)" in missing.stderr


def test_remote_training_is_followed_to_its_end(live_stack, capsys):
    # activate=never: the live stack keeps serving the shipped model for the other tests.
    run_remote_training(live_stack.url, "ops-key", {
        "epochs": 1, "max_train_items": 200, "batch_size": 32, "activate": "never"})
    captured = capsys.readouterr()
    job_id = captured.out.strip()
    assert f"training job {job_id} succeeded: model v" in captured.err


def test_jobs_pages_with_the_cursor_as_json(live_stack, tmp_path):
    write_images(tmp_path / "p", 1)
    for _ in range(3):
        assert tagger(live_stack, "submit", str(tmp_path / "p"), key="bob-key").exit_code == 0
    first = json.loads(tagger(live_stack, "jobs", "--limit", "2", "--json", key="bob-key").stdout)
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = json.loads(tagger(live_stack, "jobs", "--limit", "2", "--cursor",
                               first["next_cursor"], "--json", key="bob-key").stdout)
    assert not {j["id"] for j in first["items"]} & {j["id"] for j in second["items"]}


def test_version_and_documented_exit_codes():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == (
        f"fashion-tagger {version('fashion-tagger')}")
    helped = " ".join(runner.invoke(app, ["--help"]).stdout.split())  # unwrapped
    assert "Exit codes: 0 done" in helped and "; 2 usage error" in helped
    usage = runner.invoke(app, ["jobs", "--limit", "0"])
    assert usage.exit_code == 2
