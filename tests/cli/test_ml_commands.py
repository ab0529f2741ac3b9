import csv
import io
import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from cli.predict_output import CSV_COLUMNS

runner = CliRunner(env={"COLUMNS": "300"})  # keep rich error boxes on one line


@pytest.fixture()
def image_tree(tmp_path, fmnist_test):
    """Two real test images in nested folders, a non-image in a folder, a broken .png."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.fromarray(fmnist_test.images[0].numpy()).save(tmp_path / "a" / "0.png")
    Image.fromarray(fmnist_test.images[1].numpy()).save(tmp_path / "a" / "b" / "1.png")
    (tmp_path / "a" / "readme.txt").write_text("skipped: not an image suffix")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return tmp_path


def test_predict_csv_has_exact_columns_and_error_rows(image_tree, tiny_model_path):
    result = runner.invoke(app, ["predict", str(image_tree), "--model", str(tiny_model_path),
                                 "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line]
    assert tuple(lines[0].split(",")) == CSV_COLUMNS
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    assert len(rows) == 3
    broken = next(r for r in rows if r["path"].endswith("broken.png"))
    assert broken["label"] == "" and broken["label_index"] == ""
    ok = [r for r in rows if not r["path"].endswith("broken.png")]
    assert all(r["label"] and 0 <= int(r["label_index"]) <= 9 for r in ok)
    assert all(0 < float(r["confidence"]) <= 1 for r in ok)
    assert "broken.png" in result.stderr


def test_predict_json_matches_the_predictor(image_tree, tiny_model_path):
    from core.predictor import Predictor

    result = runner.invoke(app, ["predict", str(image_tree / "a" / "0.png"), "--model",
                                 str(tiny_model_path), "--format", "json", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)
    expected = Predictor.from_checkpoint(tiny_model_path).predict_images(
        [(image_tree / "a" / "0.png").read_bytes()])[0]
    assert item["label_index"] == expected.label_index and len(item["top_k"]) == 2


def test_missing_file_is_an_error_row_not_a_crash(tmp_path, tiny_model_path):
    result = runner.invoke(app, ["predict", str(tmp_path / "nope.jpg"), "--model",
                                 str(tiny_model_path), "--format", "csv"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1].endswith("nope.jpg,,,")
    assert "cannot read file" in result.stderr


def test_bad_model_and_format_are_usage_errors(tmp_path, image_tree, tiny_model_path):
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    result = runner.invoke(app, ["predict", str(image_tree), "--model",
                                 str(tmp_path / "bad.safetensors")])
    assert result.exit_code == 2 and "not a fashion-tagger" in result.output
    result = runner.invoke(app, ["predict", str(image_tree), "--model", str(tiny_model_path),
                                 "--format", "xml"])
    assert result.exit_code == 2 and "table, csv, json" in result.output


def test_train_evaluate_export_info(tmp_path, fmnist_dir):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--recipe", "baseline", "--epochs", "1",
                                 "--max-train-items", "300", "--threads", "1", "--out", str(out),
                                 "--data-dir", str(fmnist_dir)])
    assert result.exit_code == 0, result.output
    model = out / "model.safetensors"
    assert model.exists() and (out / "curves.png").exists()

    result = runner.invoke(app, ["evaluate", "--model", str(model), "--out", str(tmp_path / "ev"),
                                 "--data-dir", str(fmnist_dir), "--backend", "torch"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["count"] == 10_000 and 0.3 < metrics["accuracy"] < 1
    assert (tmp_path / "ev" / "confusion.png").exists()

    # The validation split the run held out (1/12 of its 300 items), with and without TTA.
    for tta in ("none", "hflip"):
        result = runner.invoke(app, ["evaluate", "--model", str(model), "--split", "val",
                                     "--tta", tta, "--out", str(tmp_path / tta),
                                     "--data-dir", str(fmnist_dir), "--backend", "torch"])
        assert result.exit_code == 0, result.output
        val = json.loads((tmp_path / tta / "metrics.json").read_text())
        assert (val["count"], val["tta"]) == (25, tta)
    result = runner.invoke(app, ["evaluate", "--split", "val", "--data-dir", str(fmnist_dir)])
    assert result.exit_code == 2 and "validation split" in result.output  # shipped: none

    onnx_path = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", "--model", str(model), "--out", str(onnx_path)])
    assert result.exit_code == 0, result.output
    assert "same labels" in result.stderr and onnx_path.stat().st_size > 1000

    result = runner.invoke(app, ["info", "--model", str(model)])
    assert json.loads(result.stdout)["arch"] == "baseline"


def test_unknown_recipe_lists_choices(tmp_path):
    result = runner.invoke(app, ["train", "--recipe", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "baseline, default-fast, default" in result.output
    assert "photo" in result.output


@pytest.fixture()
def cc0_photos():
    from pathlib import Path

    return sorted((Path(__file__).resolve().parent.parent / "fixtures" / "photos").glob("*.jpg"))


def test_predict_json_has_the_route(image_tree, tiny_model_path):
    result = runner.invoke(app, ["predict", str(image_tree / "a"), "--model",
                                 str(tiny_model_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert {item["route"] for item in json.loads(result.stdout)} == {"single"}


def test_default_predict_routes_photos_and_fashion_mnist(image_tree, cc0_photos):
    from core.models import PHOTO_MODEL_PATH

    if not PHOTO_MODEL_PATH.exists():
        pytest.skip("no shipped photo model")
    result = runner.invoke(app, ["predict", str(image_tree / "a" / "0.png"), *map(str, cc0_photos),
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert [i["route"] for i in items] == ["fashion-mnist"] + ["photo"] * len(cc0_photos)
    csv_result = runner.invoke(app, ["predict", *map(str, cc0_photos), "--format", "csv"])
    assert csv_result.stdout.splitlines()[0] == ",".join(CSV_COLUMNS)


def test_evaluate_real_photos_reports_classes_and_sources(tmp_path, cc0_photos,
                                                          tiny_model_path):
    root = tmp_path / "real-photos"
    (root / "images").mkdir(parents=True)
    lines = ["file,label_index,label_name,split,source_repo,source_path,source_category"]
    for i, path in enumerate(cc0_photos):
        (root / "images" / path.name).write_bytes(path.read_bytes())
        repo = ("alexeygrigorev/clothing-dataset" if i % 2 else
                "VINI-DS001/ClassificadorKNN")
        lines.append(f"images/{path.name},{i},x,val,{repo},x,y")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["evaluate", "--split", "real-photos-val", "--model",
                                 str(tiny_model_path), "--photos-dir", str(root),
                                 "--out", str(tmp_path / "ev"), "--backend", "torch"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["count"] == len(cc0_photos)
    assert set(metrics["per_source"]) == {"clothingds", "vinids"}
    assert len(metrics["coverage"]) == 101 and (tmp_path / "ev" / "reliability.png").exists()


def test_unlicensed_photos_cannot_train_a_shipped_model(tmp_path):
    from core.models import SHIPPED_MODEL_PATH

    result = runner.invoke(app, ["train", "--recipe", "photo", "--photos-sources",
                                 "clothingds,ganesh", "--out",
                                 str(SHIPPED_MODEL_PATH.parent / "nope")])
    assert result.exit_code == 2 and "state no licence" in result.output
    assert not (SHIPPED_MODEL_PATH.parent / "nope").exists()
    result = runner.invoke(app, ["train", "--recipe", "photo", "--photos-sources", "myntra",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2 and "clothingds, ruturaj, ganesh, vinids" in result.output
