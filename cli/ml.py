"""ML commands: train, evaluate, predict, export, info. Thin wrappers over `core`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from core.settings import get_settings

console = Console(stderr=True)

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder holding FashionMNIST/raw (TAGGER_FASHION_MNIST_DIR)"),
]


PhotosDirOpt = Annotated[
    Path | None,
    typer.Option("--photos-dir", help="The real-photos folder (manifest.csv); default:"
                 " real-photos beside the Fashion-MNIST folder"),
]


def data_dir_or_default(data_dir: Path | None) -> Path:
    return data_dir or get_settings().fashion_mnist_dir


def photos_dir_or_default(photos_dir: Path | None) -> Path:
    return photos_dir or get_settings().photos_dir


def train(
    out: Annotated[Path, typer.Option(help="Output folder for the model and its artifacts")] = Path(
        "runs/latest"),
    recipe: Annotated[str, typer.Option(
        help="baseline | default-fast | default | finetune | photo")] = "default",
    arch: Annotated[str | None, typer.Option(help="Override the recipe's architecture")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    lr: Annotated[float | None, typer.Option(min=0)] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    max_train_items: Annotated[int | None, typer.Option(min=1)] = None,
    val_fraction: Annotated[float | None, typer.Option(
        min=0, max=0.5, help="Validation share of the training split; 0 trains on all of it"
                             " (a final fit with a recipe chosen on validation)")] = None,
    threads: Annotated[int | None, typer.Option(min=0, help="0 = available cores")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda")] = None,
    data_dir: DataDirOpt = None,
    download: Annotated[bool, typer.Option(help="Download Fashion-MNIST when missing")] = False,
    init_from: Annotated[Path | None, typer.Option(
        help="Start from this checkpoint's weights (same arch and labels): fine-tuning. A photo"
             " recipe starts from the shipped model unless told otherwise, and routes"
             " Fashion-MNIST images to this model")] = None,
    photos_dir: PhotosDirOpt = None,
    photos_sources: Annotated[str | None, typer.Option(
        help="Real-photos sources to train on, comma separated (clothingds, ruturaj, ganesh,"
             " vinids, or all); default: the recipe's. Only clothingds (CC0) may train a"
             " model written under core/models")] = None,
    remote: Annotated[bool, typer.Option(
        "--remote", help="Queue the run on a server's workers (the same recipe and"
                         " overrides) and follow it; --out/--data-dir stay local")] = False,
    server: Annotated[str | None, typer.Option(help="With --remote: TAGGER_SERVER_URL")] = None,
    api_key: Annotated[str | None, typer.Option(help="With --remote: TAGGER_API_KEY")] = None,
) -> None:
    """Train a model on the Fashion-MNIST training split (validation carved out of it)."""
    if remote:
        from cli.remote import run_remote_training

        run_remote_training(server, api_key, {
            "recipe": recipe, "arch": arch, "epochs": epochs, "batch_size": batch_size, "lr": lr,
            "augment": augment, "seed": seed, "max_train_items": max_train_items})
        return
    from core.checkpoint import load_checkpoint
    from core.data import load_fashion_mnist
    from core.photo_runs import run_photo_training
    from core.photos import check_licence, parse_sources
    from core.recipes import recipe as get_recipe
    from core.runs import run_training

    try:
        cfg = get_recipe(recipe)
        sources = parse_sources(photos_sources) if photos_sources is not None else None
        overrides = {"arch": arch, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                     "augment": augment, "seed": seed, "max_train_items": max_train_items,
                     "val_fraction": val_fraction, "threads": threads, "device": device,
                     "photos_sources": sources}
        cfg = cfg.model_validate({**cfg.model_dump(),
                                  **{k: v for k, v in overrides.items() if v is not None}})
        if cfg.photos_sources:
            check_licence(cfg.photos_sources, out)
            init_from = init_from or default_model_path()
        root = data_dir_or_default(data_dir)
        data = load_fashion_mnist(root, "train", download=download)
        parent = load_checkpoint(init_from) if init_from is not None else None
    except (ValueError, FileNotFoundError) as exc:  # CheckpointError is a ValueError
        raise typer.BadParameter(str(exc)) from exc

    console.print(f"[bold]Training[/] {cfg.model_dump_json()}")
    with Progress(
        TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
        TextColumn("loss {task.fields[loss]:.4f} acc {task.fields[acc]:.4f}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    ) as bar:
        task = bar.add_task("train", total=None, epoch=0, epochs=cfg.epochs, loss=0.0, acc=0.0)

        def on_progress(p) -> None:
            bar.update(task, total=p.steps * p.epochs, completed=(p.epoch - 1) * p.steps + p.step,
                       epoch=p.epoch, loss=p.loss, acc=p.accuracy)
            if p.epoch_end:
                val = f" val_acc {p.val_accuracy:.4f}" if p.val_accuracy is not None else ""
                bar.console.print(f"epoch {p.epoch}: loss {p.loss:.4f} acc {p.accuracy:.4f}"
                                  f"{val} ({p.elapsed_s:.0f} s)")

        fmnist_info = {"name": "fashion-mnist", "split": "train"}
        init_state = parent[0].state_dict() if parent else None
        if cfg.photos_sources:
            output = run_photo_training(
                cfg, data, photos_dir_or_default(photos_dir), out, fmnist_info, on_progress,
                init_state=init_state, parent=parent[1] if parent else None)
        else:
            output = run_training(cfg, data, out, fmnist_info, on_progress,
                                  init_state=init_state, parent=parent[1] if parent else None)
    val = output.val_metrics.accuracy if output.val_metrics else None
    console.print(f"[green]Saved[/] {output.model_path} in {output.result.seconds:.0f} s"
                  + (f", validation accuracy {val:.4f}" if val is not None else ""))
    if cfg.photos_sources:
        print_photo_summary(output.model_path)


def print_photo_summary(model_path: Path) -> None:
    from core.checkpoint import load_checkpoint

    meta = load_checkpoint(model_path)[1]
    m, cal = meta.metrics, meta.metrics["calibration"]
    per_source = ", ".join(f"{k} {v:.3f}" for k, v in m["photos_val_per_source"].items())
    console.print(f"real-photos val accuracy {m['photos_val_accuracy']:.4f} (tta {meta.tta};"
                  f" {per_source}); temperature {cal['temperature']}, review below"
                  f" {cal['review_below']}: {cal['unflagged_share']:.3f} unflagged,"
                  f" {cal['unflagged_accuracy']} correct")




ModelOpt = Annotated[
    Path | None,
    typer.Option("--model", help="Checkpoint (.safetensors or legacy baseline .pth);"
                 " default: the shipped model"),
]
BackendOpt = Annotated[str, typer.Option(help="auto | torch | onnx")]


def load_predictor(model: Path | None, backend: str = "auto", device: str | None = None,
                   tta: str | None = None, tta_below: float | None = None, routed: bool = False):
    """A Predictor for `model` (default: the shipped Fashion-MNIST model); with `routed`,
    what the service serves (core.routing.serving_predictor): by default the shipped photo
    model beside the Fashion-MNIST model, each image routed to one of them."""
    from core.checkpoint import CheckpointError
    from core.predictor import Predictor
    from core.routing import serving_predictor

    settings = get_settings()
    kwargs = {"device": device or settings.device, "backend": backend,
              "threads": settings.torch_threads,
              "onnx_cache_dir": settings.data_dir / "cache" / "onnx"}
    try:
        if routed:
            return serving_predictor(model, **kwargs)
        return Predictor.from_checkpoint(model or default_model_path(), tta=tta,
                                         tta_below=tta_below, **kwargs)
    except (CheckpointError, ValueError, RuntimeError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from exc


def validation_split(meta, root: Path):
    """The items a Fashion-MNIST model held out for validation: its own config's fraction
    and seed over the training split (core.runs carves it the same way)."""
    from core.data import limit, load_fashion_mnist, train_val_split

    cfg = meta.train_config or {}
    if meta.dataset.get("name") != "fashion-mnist" or not cfg.get("val_fraction"):
        raise ValueError("this model was not trained on Fashion-MNIST with a validation split")
    data = limit(load_fashion_mnist(root, "train"), cfg.get("max_train_items"), cfg["seed"])
    return train_val_split(data, cfg["val_fraction"], cfg["seed"])[1]


def default_model_path() -> Path:
    from core.models import SHIPPED_MODEL_PATH

    return SHIPPED_MODEL_PATH


PHOTO_SPLITS = {"real-photos-val": "val", "real-photos-train": "train"}


def evaluate(
    model: ModelOpt = None,
    split: Annotated[str, typer.Option(
        help="test | train | val (the validation split the model was trained without) |"
             " real-photos-val | real-photos-train (photos through the served path: by"
             " default the shipped photo + Fashion-MNIST pair)")] = "test",
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json and plots")] = None,
    backend: BackendOpt = "auto",
    tta: Annotated[str | None, typer.Option(
        help="none | hflip: test-time augmentation; default: the model's own")] = None,
    tta_below: Annotated[float | None, typer.Option(
        min=0, max=1, help="hflip only below this top probability; default: the model's")] = None,
    data_dir: DataDirOpt = None,
    photos_dir: PhotosDirOpt = None,
) -> None:
    """Accuracy, per-class precision/recall and plots on a Fashion-MNIST split; per class and
    per source on the real photos."""
    import json

    from rich.table import Table

    if split in PHOTO_SPLITS:
        predictor = load_predictor(model, backend, routed=True)
        evaluate_photos(predictor, photos_dir_or_default(photos_dir), PHOTO_SPLITS[split], out)
        return

    from core.data import load_fashion_mnist
    from core.evaluation import compute_metrics
    from core.plots import plot_confusion, plot_curves
    from core.training import EpochStats, to_float

    predictor = load_predictor(model, backend, tta=tta, tta_below=tta_below)
    try:
        if split == "val":
            data = validation_split(predictor.meta, data_dir_or_default(data_dir))
        else:
            data = load_fashion_mnist(data_dir_or_default(data_dir), split)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    predicted = predictor.logits(to_float(data.images)).argmax(1)
    metrics = compute_metrics(data.targets, predicted, predictor.labels)

    table = Table(title=f"{split} split, {metrics.count} images, model {predictor.version}")
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for c in metrics.per_class:
        table.add_row(c.label, f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}",
                      str(c.support))
    Console().print(table)
    Console().print(f"[bold]accuracy {metrics.accuracy:.4f}[/] ({predictor.backend} backend,"
                    f" tta {predictor.tta})")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(
            {"split": split, "model_version": predictor.version, "tta": predictor.tta,
             "tta_below": predictor.tta_below,
             **metrics.model_dump()},
            indent=2))
        plot_confusion(metrics.confusion, predictor.labels, out / "confusion.png",
                       f"{split} split, accuracy {metrics.accuracy:.4f}")
        if predictor.meta.history:
            plot_curves([EpochStats(**h) for h in predictor.meta.history], out / "curves.png",
                        predictor.meta.arch)
        console.print(f"Wrote metrics.json and plots to {out}")


def evaluate_photos(predictor, root: Path, split: str, out: Path | None) -> None:
    """Real photos through the served path: per class, per source, calibration."""
    import json

    from rich.table import Table

    from core.photo_eval import photo_records, predict_photos, score
    from core.plots import plot_confusion, plot_reliability
    from core.predictor import ItemError

    try:
        records = photo_records(root, split)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--photos-dir") from exc
    results = predict_photos(predictor, root, records)
    ok = [None if isinstance(r, ItemError) else r for r in results]
    figures = score(records, [r and r.label_index for r in ok], [r and r.confidence for r in ok],
                    predictor.labels, predictor.meta.review_below,
                    [r.route if r else "error" for r in ok])
    table = Table(title=f"real-photos {split}, {figures['count']} photos,"
                        f" model {getattr(predictor, 'versions', predictor.version)}")
    table.add_column("class or source")
    table.add_column("accuracy", justify="right")
    for name, acc in [*figures["per_class"].items(), *figures["per_source"].items()]:
        table.add_row(name, f"{acc:.4f}")
    Console().print(table)
    review = figures.get("review")
    Console().print(f"[bold]accuracy {figures['accuracy']:.4f}[/] (min class"
                    f" {figures['min_class']:.4f}; routes {figures['routes']}; ECE"
                    f" {figures['ece']:.4f})" + (
                        f"; review below {review['review_below']}: {review['unflagged_share']:.3f}"
                        f" unflagged, {review['unflagged_accuracy']:.4f} of them correct"
                        if review and review["unflagged_accuracy"] is not None else ""))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(
            {"split": f"real-photos-{split}",
             "model_version": getattr(predictor, "versions", predictor.version), **figures},
            indent=2))
        plot_confusion(figures["confusion"], predictor.labels, out / "confusion.png",
                       f"real-photos {split}, accuracy {figures['accuracy']:.4f}")
        plot_reliability(figures["reliability"], out / "reliability.png",
                         f"real-photos {split}")
        console.print(f"Wrote metrics.json and plots to {out}")


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def collect_paths(paths: list[Path]) -> list[Path]:
    """Files as given; folders walked recursively for image files, in sorted order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*")
                                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    return found


def predict(
    paths: Annotated[list[Path], typer.Argument(help="Image files and folders")],
    model: ModelOpt = None,
    output_format: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    top_k: Annotated[int, typer.Option(min=1, max=10)] = 3,
    batch_size: Annotated[int, typer.Option(min=1)] = 1024,
    backend: BackendOpt = "auto",
) -> None:
    """Classify image files (folders recursively). Unreadable files get an error row."""
    from cli.predict_output import write_predictions
    from core.predictor import ItemError

    if output_format not in ("table", "csv", "json"):
        raise typer.BadParameter("choose one of: table, csv, json", param_hint="--format")
    predictor = load_predictor(model, backend, routed=True)
    files = collect_paths(paths)
    rows = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        blobs, read_errors = [], {}
        for i, path in enumerate(chunk):
            try:
                blobs.append(path.read_bytes())
            except OSError as exc:
                read_errors[i] = f"cannot read file: {exc.strerror or exc}"
                blobs.append(b"")
        results = predictor.predict_images(blobs, top_k=top_k)
        for i, (path, result) in enumerate(zip(chunk, results, strict=True)):
            rows.append((path, ItemError(read_errors[i]) if i in read_errors else result))
    write_predictions(rows, output_format)
    failed = sum(isinstance(r, ItemError) for _, r in rows)
    models = getattr(predictor, "versions", {"model": predictor.version})
    console.print(f"{len(rows)} files, {len(rows) - failed} classified, {failed} errors"
                  f" ({', '.join(f'{k} {v}' for k, v in models.items())},"
                  f" {predictor.backend} backend)")


def export(
    out: Annotated[Path, typer.Option(help="Output .onnx file")],
    model: ModelOpt = None,
    export_format: Annotated[str, typer.Option("--format", help="onnx")] = "onnx",
) -> None:
    """Export a model to ONNX and check it against torch in onnxruntime."""
    from core.checkpoint import CheckpointError, load_checkpoint
    from core.export import check_onnx, check_samples, export_onnx

    if export_format != "onnx":
        raise typer.BadParameter("choose one of: onnx", param_hint="--format")
    try:
        net, meta = load_checkpoint(model or default_model_path())
    except CheckpointError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from exc
    shape = tuple(meta.input_shape)
    data = export_onnx(net, shape)
    diff = check_onnx(data, net, check_samples(shape))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    console.print(f"[green]Wrote[/] {out} ({len(data) / 1e6:.1f} MB); onnxruntime vs torch:"
                  f" same labels, max |logit diff| {diff:.2e}")


def info(model: ModelOpt = None) -> None:
    """Print a checkpoint's metadata (arch, labels, metrics, training recipe)."""
    from core.checkpoint import CheckpointError, load_checkpoint

    try:
        _, meta = load_checkpoint(model or default_model_path())
    except CheckpointError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from exc
    typer.echo(meta.model_dump_json(indent=2, exclude={"history"}))


def register(app: typer.Typer) -> None:
    for command in (train, evaluate, predict, export, info):
        app.command()(command)
