"""Client commands against a running server: submit, jobs, status, results, cancel, models,
and `train --remote` (delegated here from cli.ml). Server and key come from --server/--api-key
or TAGGER_SERVER_URL/TAGGER_API_KEY.

Scriptable: data (job ids, CSV, JSON) goes to stdout, progress and messages to stderr; every
listing takes `--json`; an error answer from the server is one line on stderr, never a
traceback. Exit codes (cli.main.EXIT_CODES): 0 done; 1 the job did not succeed, or the
server answered an error, or could not be reached; 2 a usage error (bad option or argument).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cli.client import TaggerClient, TaggerError, is_archive
from cli.schemas import Job, TrainingJob
from core.settings import get_settings

console = Console(stderr=True, soft_wrap=True)  # messages stay one line: greppable

# Same list as cli.ml.IMAGE_SUFFIXES (not imported: keeps this module light).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
EXPORT_FORMATS = ("csv", "jsonl")
MODEL_FORMATS = ("safetensors", "onnx")

ServerOpt = Annotated[str | None, typer.Option(
    "--server", help="API base URL (TAGGER_SERVER_URL, default http://127.0.0.1:8000)")]
ApiKeyOpt = Annotated[str | None, typer.Option(
    "--api-key", help="API key (TAGGER_API_KEY)", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the server's answer as JSON")]


def print_json(answer: BaseModel) -> None:
    """stdout, one document: what the API answered (the client's typed view of it)."""
    typer.echo(answer.model_dump_json(indent=2))


@contextmanager
def connect(server: str | None, api_key: str | None) -> Iterator[TaggerClient]:
    """A client; any failure it raises becomes one clear line and exit code 1."""
    settings = get_settings()
    try:
        with TaggerClient(server or settings.server_url, api_key or settings.api_key) as client:
            yield client
    except TaggerError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except (OSError, TimeoutError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


# -- submitting ------------------------------------------------------------------------------


def collect_images(paths: list[Path]) -> list[Path]:
    """Files as given; folders walked recursively for images (by suffix), in sorted order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*")
                                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise typer.BadParameter(f"{path}: no such file or folder", param_hint="PATH")
    return found


def job_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]} {task.fields[failed]}"), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=False)


def follow_job(client: TaggerClient, job: Job) -> Job:
    """Wait for the job with a progress bar (its event stream, polling as a fallback)."""
    if job.ended:
        return job
    with job_bar() as bar:
        task = bar.add_task(f"job {job.id[:8]}", total=job.progress.total or None,
                            status=job.status, failed="")

        def update(current: Job) -> None:
            p = current.progress
            bar.update(task, total=p.total or None, completed=p.finished,
                       status=current.status,
                       failed=f"({p.failed} failed)" if p.failed else "")

        return client.wait(job.id, on_update=update)


def summary(job: Job) -> str:
    p = job.progress
    parts = [f"{p.done} tagged", f"{p.failed} failed"]
    if p.skipped:
        parts.append(f"{p.skipped} skipped")
    return f"job {job.id} {job.status}: {', '.join(parts)} of {p.total}"


def export_to(client: TaggerClient, job_id: str, out: Path, fmt: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as handle:
        client.export(job_id, handle, fmt)


def submit(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Images, folders (recursively, images only) or one .zip/.tar/.tar.gz archive",
        show_default=False)] = None,
    manifest: Annotated[Path | None, typer.Option(
        help="CSV/JSONL catalogue of item_id,url instead of PATHs")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job to its end")] = False,
    out: Annotated[Path | None, typer.Option(
        help="Write the results here when done (.csv, or .jsonl); implies --wait")] = None,
    top_k: Annotated[int, typer.Option(min=1, max=10)] = 3,
    review_threshold: Annotated[float | None, typer.Option(
        min=0, max=1, help="Flag items below this confidence")] = None,
    callback_url: Annotated[str | None, typer.Option(help="Webhook when the job ends")] = None,
    idempotency_key: Annotated[str | None, typer.Option(
        help="Resubmitting with the same key returns the first job")] = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Submit images, a folder, an archive or a URL manifest as a bulk job; prints its id."""
    if bool(paths) == bool(manifest):
        raise typer.BadParameter("give PATHs or --manifest (one of them)")
    options: dict[str, Any] = {"top_k": top_k, "review_threshold": review_threshold,
                               "callback_url": callback_url, "idempotency_key": idempotency_key}
    archives = [p for p in paths or [] if p.is_file() and is_archive(p)]
    if archives and len(paths or []) > 1:
        raise typer.BadParameter("send one archive on its own, or images without an archive",
                                 param_hint="PATH")
    images = [] if manifest or archives else collect_images(paths or [])
    if not (manifest or archives or images):
        raise typer.BadParameter("no images found", param_hint="PATH")
    with connect(server, api_key) as client:
        if manifest:
            job = client.submit_manifest(manifest, **options)
        elif archives:
            job = client.submit_archive(archives[0], **options)
        else:
            job = client.submit_files(images, **options)
        typer.echo(job.id)
        console.print(f"job {job.id} {job.status}: {job.progress.total} items")
        if not (wait or out):
            return
        job = follow_job(client, job)
        console.print(summary(job))
        if out:
            export_to(client, job.id, out, "jsonl" if out.suffix == ".jsonl" else "csv")
            console.print(f"wrote {out}")
    if job.status != "succeeded":
        raise typer.Exit(1)


# -- jobs --------------------------------------------------------------------------------------


def jobs(
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    cursor: Annotated[str | None, typer.Option(
        help="The next_cursor of the previous page (older jobs)")] = None,
    as_json: JsonOpt = False,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Your jobs, newest first."""
    with connect(server, api_key) as client:
        page = client.jobs(limit, cursor)
    if as_json:
        print_json(page)
        return
    table = Table(box=box.SIMPLE)
    table.add_column("id", no_wrap=True, min_width=32)  # whole: it is what the others take
    for column in ("source", "status", "done", "failed", "total", "created"):
        table.add_column(column, overflow="fold",
                         justify="right" if column in ("done", "failed", "total") else "left")
    for job in page.items:
        p = job.progress
        table.add_row(job.id, job.source, job.status, str(p.done), str(p.failed),
                      str(p.total), job.created_at[:19].replace("T", " "))
    Console().print(table)
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


def status(
    job_id: Annotated[str, typer.Argument(help="Job id")],
    as_json: JsonOpt = False,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """A job's status and progress."""
    with connect(server, api_key) as client:
        job = client.job(job_id)
    if as_json:
        print_json(job)
        return
    typer.echo(summary(job))
    typer.echo(f"created {job.created_at}, started {job.started_at or '-'},"
               f" finished {job.finished_at or '-'}, model {job.model_version or '-'}")


def results(
    job_id: Annotated[str, typer.Argument(help="Job id")],
    output_format: Annotated[str, typer.Option("--format", help="csv | jsonl")] = "csv",
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout)")] = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Every finished item of a job, as CSV or JSONL."""
    if output_format not in EXPORT_FORMATS:
        raise typer.BadParameter(f"choose one of: {', '.join(EXPORT_FORMATS)}",
                                 param_hint="--format")
    with connect(server, api_key) as client:
        if out:
            export_to(client, job_id, out, output_format)
        else:
            client.export(job_id, sys.stdout.buffer, output_format)
            sys.stdout.flush()


def cancel(
    job_id: Annotated[str, typer.Argument(help="Job id")],
    as_json: JsonOpt = False,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Cancel a job: items not yet processed are skipped."""
    with connect(server, api_key) as client:
        job = client.cancel(job_id)
    if as_json:
        print_json(job)
    console.print(summary(job))


# -- models and remote training ------------------------------------------------------------

models_app = typer.Typer(help="The server's model versions: list, activate, download.",
                         no_args_is_help=False)


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context, as_json: JsonOpt = False, server: ServerOpt = None,
           api_key: ApiKeyOpt = None) -> None:
    """List model versions (or: list, activate V, download V)."""
    if ctx.invoked_subcommand is None:
        list_models(as_json, server, api_key)


@models_app.command("list")
def list_models(as_json: JsonOpt = False, server: ServerOpt = None,
                api_key: ApiKeyOpt = None) -> None:
    """Model versions with their metrics; the active one is marked."""
    with connect(server, api_key) as client:
        page = client.models()
    if as_json:
        print_json(page)
        return
    table = Table()
    for column in ("version", "arch", "val accuracy", "source", "registered", "active"):
        table.add_column(column)
    for model in page.items:
        accuracy = model.metrics.get("val_accuracy")
        table.add_row(model.version, model.arch,
                      f"{accuracy:.4f}" if isinstance(accuracy, int | float) else "",
                      model.source, model.registered_at, "yes" if model.active else "")
    Console().print(table)


@models_app.command("activate")
def activate_model(version: Annotated[str, typer.Argument(help="Model version")],
                   force: Annotated[bool, typer.Option(
                       help="Even if its labels differ from the active version's")] = False,
                   server: ServerOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Make VERSION the model the workers serve (operator keys)."""
    with connect(server, api_key) as client:
        client.activate_model(version, force=force)
    console.print(f"model {version} is active")


@models_app.command("download")
def download_model(
    version: Annotated[str, typer.Argument(help="Model version")],
    out: Annotated[Path, typer.Option(help="File to write")],
    model_format: Annotated[str, typer.Option("--format", help="safetensors | onnx")
                            ] = "safetensors",
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Download a model version as .safetensors or .onnx."""
    if model_format not in MODEL_FORMATS:
        raise typer.BadParameter(f"choose one of: {', '.join(MODEL_FORMATS)}",
                                 param_hint="--format")
    with connect(server, api_key) as client:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as handle:
            size = client.download_model(version, handle, model_format)
    console.print(f"wrote {out} ({size / 1e6:.1f} MB)")


def training_progress(job: TrainingJob) -> tuple[float, str]:
    """(percent done, text) for the bar."""
    p = job.progress
    text: list[str] = [job.status]
    if p.epochs:
        text.append(f"epoch {p.epoch}/{p.epochs}")
    for value, label in ((job.loss, "loss"), (job.val_accuracy, "val acc")):
        if value is not None:
            text.append(f"{label} {value:.4f}")
    if job.eta_s:
        text.append(f"~{job.eta_s:.0f} s left")
    done = 1.0 if job.status == "succeeded" else p.fraction
    return 100 * done, " ".join(text)


def run_remote_training(server: str | None, api_key: str | None, params: dict[str, Any]) -> None:
    """`fashion-tagger train --remote`: queue a training job on the server and follow it."""
    with connect(server, api_key) as client:
        job = client.create_training_job(**params)
        typer.echo(job.id)
        with Progress(TextColumn("[bold]training"), BarColumn(), TextColumn("{task.fields[text]}"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("train", total=100, text=job.status)

            def update(current: TrainingJob) -> None:
                completed, text = training_progress(current)
                bar.update(task, completed=completed, text=text)

            job = _follow_training(client, job, update)
    console.print(f"training job {job.id} {job.status}"
                  + (f": model {job.model_version}" if job.model_version else "")
                  + (f" ({job.activation})" if job.activation else ""))
    if job.status != "succeeded":
        if job.error:
            console.print(f"[red]error:[/] {job.error}", highlight=False)
        raise typer.Exit(1)


def _follow_training(client: TaggerClient, job: TrainingJob,
                     update: Callable[[TrainingJob], None]) -> TrainingJob:
    update(job)
    try:
        for _, current in client.training_events(job.id):
            update(current)
            job = current
            if job.ended:
                return job
    except TaggerError as exc:
        if exc.status not in (0, 404, 405):
            raise
    while not job.ended:  # no stream (or it broke off): poll
        time.sleep(1.0)
        job = client.training_job(job.id)
        update(job)
    return job


def register(app: typer.Typer) -> None:
    for command in (submit, jobs, status, results, cancel):
        app.command()(command)
    app.add_typer(models_app, name="models")
