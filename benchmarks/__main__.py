"""`python -m benchmarks <name>`: run a benchmark, save benchmarks/results/<name>.json.

`python -m benchmarks report` renders BENCHMARKS.md from the saved results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from benchmarks.common import save_result
from core.settings import get_settings

app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)
DataDir = Annotated[Path | None, typer.Option("--data-dir")]


def data_dir_or_default(data_dir: Path | None) -> Path:
    return data_dir or get_settings().fashion_mnist_dir


@app.command()
def training(
    recipes: Annotated[list[str] | None, typer.Argument()] = None, data_dir: DataDir = None,
    keep: Annotated[Path | None, typer.Option(help="leave each run in KEEP/<recipe>")] = None,
) -> None:
    """Time `fashion-tagger train` per recipe and evaluate each result on the test split."""
    from benchmarks.training import run_recipe

    for name in recipes or ["baseline", "default-fast"]:
        save_result(f"training-{name}", run_recipe(name, data_dir, keep=keep))


@app.command("training-api")
def training_api(
    recipe: str = "default", seed: int = 0, data_dir: DataDir = None,
    keep: Annotated[Path | None, typer.Option(help="leave the model in KEEP/api-<recipe>")] = None,
) -> None:
    """A full recipe as a training job through the API (`fashion-tagger up`), evaluated on the
    test split like `training`, and compared with the CLI run of the same recipe and seed."""
    from benchmarks.training_api import run_training_job

    save_result(f"training-api-{recipe}", run_training_job(recipe, seed, data_dir, keep))


@app.command("worker-tuning")
def worker_tuning(data_dir: DataDir = None) -> None:
    """The CPU worker's pool, concurrency, threads and chunk size, each measured end to end."""
    from benchmarks.worker_tuning import run

    save_result("worker-tuning", run(data_dir_or_default(data_dir)))


@app.command()
def switch(data_dir: DataDir = None) -> None:
    """How soon the next classify job reports a newly activated model version."""
    from benchmarks.training_api import switch_latency

    save_result("switch", switch_latency(data_dir))


@app.command()
def accuracy(model: Path | None = None, data_dir: DataDir = None) -> None:
    """Shipped model accuracy via `fashion-tagger predict` on the test images as PNG files."""
    from benchmarks.accuracy import predict_accuracy

    save_result("accuracy", predict_accuracy(data_dir_or_default(data_dir), model))


@app.command()
def photos(
    part: Annotated[str, typer.Option(help="accuracy | learning-curve | throughput | all")] = (
        "accuracy"),
    data_dir: DataDir = None,
    photos_dir: Annotated[Path | None, typer.Option(
        help="the real-photos folder (default: TAGGER_PHOTOS_DIR)")] = None,
    compare: Annotated[Path | None, typer.Option(
        help="accuracy: also score this photo model (trained on all of real-photos train;"
             " not shipped)")] = None,
) -> None:
    """Real product photos: accuracy and calibration via `fashion-tagger predict`; the
    own-photos learning curve and real-photo throughput through `fashion-tagger up`; writes
    photos-<part>.json."""
    from benchmarks.photos import PARTS

    names = list(PARTS) if part == "all" else [part]
    if any(name not in PARTS for name in names):
        raise typer.BadParameter(f"choose one of: {', '.join(PARTS)}, all", param_hint="--part")
    root = data_dir_or_default(data_dir)
    photos_root = photos_dir or get_settings().photos_dir
    for name in names:
        save_result(f"photos-{name}", PARTS[name](root, photos_root, compare=compare))


@app.command()
def inference(data_dir: DataDir = None) -> None:
    """In-process Predictor throughput per backend and batch size; preprocessing throughput."""
    from benchmarks.inference import predictor_throughput, preprocessing_throughput

    root = data_dir_or_default(data_dir)
    save_result("inference", {"predictor": predictor_throughput(root),
                              "preprocessing": preprocessing_throughput(root)})


@app.command()
def service(data_dir: DataDir = None) -> None:
    """The service end to end vs the in-process Predictor and the naive tutorial design;
    writes benchmarks/results/latest.json."""
    from benchmarks.service import run

    save_result("latest", run(data_dir_or_default(data_dir)))


@app.command()
def latency(data_dir: DataDir = None, runs: int = 7) -> None:
    """The 32-client single-image latency of `service`, repeated on one warm stack to show
    its spread; writes benchmarks/results/latency.json."""
    from benchmarks.service import latency_spread

    save_result("latency", latency_spread(data_dir_or_default(data_dir), runs))


@app.command()
def ab(baseline: Annotated[str, typer.Option(help="the git ref to compare with")],
       current: Annotated[str | None, typer.Option(
           help="the git ref to measure against it (default: this checkout)")] = None,
       question: Annotated[str, typer.Option(
           help="what the comparison answers (recorded, shown in BENCHMARKS.md)")] = "",
       rounds: int = 3, data_dir: DataDir = None) -> None:
    """The service of another commit and of this checkout, alternately on one machine:
    bulk images/s, 32-client p99, Redis script calls per chunk and inference worker memory;
    writes benchmarks/results/ab-<baseline>[-<current>].json."""
    from benchmarks.ab import run

    name = f"ab-{baseline}" + (f"-{current}" if current else "")
    save_result(name, {"question": question,
                       **run(data_dir_or_default(data_dir), baseline, rounds, current)})


@app.command()
def chaos(only: Annotated[list[str] | None, typer.Option(help="run only these scenarios")] = None,
          images: int = 10_000, data_dir: DataDir = None,
          baseline: Annotated[str | None, typer.Option(
              help="also run another commit's code, alternately with this checkout's")] = None,
          rounds: Annotated[int, typer.Option(help="with --baseline: rounds of each")] = 3,
          ) -> None:
    """Faults on 10,000-image jobs with production settings: a worker child, the whole
    worker, Redis and the API killed mid-job, and a hostile manifest; writes
    benchmarks/results/chaos.json, or with --baseline chaos-ab-<baseline>.json."""
    from benchmarks.chaos import run, run_ab

    data = data_dir_or_default(data_dir)
    if baseline:
        save_result(f"chaos-ab-{baseline}", run_ab(data, baseline, rounds, images, only))
    else:
        save_result("chaos", run(data, images, only))


@app.command()
def abuse(
    data_dir: DataDir = None,
    phase_s: Annotated[float, typer.Option(help="seconds of each phase (quiet, flood)")] = 60,
    big_job_items: Annotated[int, typer.Option(help="items in tenant A's big job")] = 100_000,
    keep: Annotated[Path | None, typer.Option(help="run the stack here and keep its logs")] = None,
) -> None:
    """32 well-behaved clients, quiet then while one tenant floods bulk jobs and another sends
    hostile bodies; errors, p99s, API RSS, Redis memory, a small job's start; writes
    benchmarks/results/abuse.json."""
    from benchmarks.abuse import run

    save_result("abuse", run(data_dir_or_default(data_dir), phase_s, big_job_items, keep))


@app.command("install-size")
def install_size(
    roles: Annotated[str, typer.Option(help="the extras to install, comma-separated")] = (
        "client,api,flower,worker-cpu,train,all"),
    work: Annotated[Path, typer.Option(help="where the venvs are made")] = Path("/tmp/ft-size"),
) -> None:
    """Installed size of each role's extra, each in a fresh venv (stands in for image sizes
    where no container engine runs); each venv runs its role's entry point."""
    from benchmarks.install_size import install_sizes

    save_result("install-size", install_sizes(roles.split(","), work))


@app.command(name="all")
def run_all(data_dir: DataDir = None) -> None:
    """Every benchmark above, then the report (about 25 minutes on 2 cores)."""
    training(None, data_dir)
    accuracy(None, data_dir)
    inference(data_dir)
    service(data_dir)
    latency(data_dir)
    report()


@app.command()
def report() -> None:
    """Render BENCHMARKS.md from benchmarks/results/*.json."""
    from benchmarks.report import write_report

    print(f"wrote {write_report()}")


if __name__ == "__main__":
    app()
