"""The pure helpers of the photos benchmark's service parts (benchmarks/photos_curve.py,
benchmarks/photos_service.py): sampling, the dataset's folders, scoring exported results,
the workers' histograms. No stack, no full-set run."""

from __future__ import annotations

import io
import zipfile

import pytest

from benchmarks.common import stored_zip
from benchmarks.photos_curve import (
    dataset_members,
    ema_start_share,
    sample_per_class,
)
from benchmarks.photos_service import (
    member_name,
    score_items,
    stage_delta,
    stage_totals,
    worker_stages,
)
from core.labels import FASHION_MNIST_LABELS, match_labels
from core.photos import SOURCES, PhotoRecord


def records(per_class: int = 12, val_per_class: int = 3) -> list[PhotoRecord]:
    out = []
    for label in range(10):
        for i in range(per_class + val_per_class):
            split = "train" if i < per_class else "val"
            out.append(PhotoRecord(f"images/{label}/{split}-{i}.jpg", label, split,
                                   SOURCES[i % len(SOURCES)]))
    return out


def test_samples_are_nested_per_class_train_only_and_seeded():
    samples = sample_per_class(records(), (2, 5, 10), seed=0)
    assert [len(samples[k]) for k in (2, 5, 10)] == [20, 50, 100]
    for k in (2, 5, 10):
        assert all(r.split == "train" for r in samples[k])
        assert {label: sum(r.label_index == label for r in samples[k]) for label in range(10)} \
            == dict.fromkeys(range(10), k)
    assert set(samples[2]) <= set(samples[5]) <= set(samples[10])
    assert samples == sample_per_class(list(reversed(records())), (2, 5, 10), seed=0)
    assert samples[5] != sample_per_class(records(), (2, 5, 10), seed=1)[5]


def test_a_class_without_enough_train_photos_is_an_error():
    with pytest.raises(ValueError, match="fewer than 20 train photos"):
        sample_per_class(records(), (20,), seed=0)


def test_dataset_folders_are_one_level_each_naming_the_model_labels():
    sample = sample_per_class(records(), (1,), seed=0)[1]
    members = dataset_members(sample, FASHION_MNIST_LABELS)
    folders = [name.split("/") for name, _ in members]
    assert all(len(parts) == 2 for parts in folders)
    assert folders[0][0] == "T-shirt_top"
    assert match_labels(FASHION_MNIST_LABELS, [f for f, _ in folders]) == list(range(10))
    assert all(name.endswith(file.rsplit("/", 1)[1]) for name, file in members)


def test_the_ema_keeps_the_first_steps_weights_by_decay_per_later_step():
    assert ema_start_share(1, 0.999) == 1.0
    assert ema_start_share(80, 0.999) == pytest.approx(0.999 ** 79)
    assert ema_start_share(80, None) == 0.0


def test_stored_zip_keeps_names_and_bytes():
    body = stored_zip([("a/x.jpg", b"1"), (member_name(3, records()[0]), b"22")])
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.namelist() == ["a/x.jpg", "00003-train-0.jpg"]
        assert zf.read("00003-train-0.jpg") == b"22"


def test_results_are_scored_by_label_name_and_missing_ones_are_wrong():
    val = [r for r in records(1, 1) if r.split == "val"][:3]
    names = [member_name(i, r) for i, r in enumerate(val)]

    def item(name, label, review=False):
        return {"filename": name, "status": "ok", "label": label, "confidence": 0.9,
                "needs_review": review, "model_version": "v5", "route": "photo"}

    items = [item(names[0], FASHION_MNIST_LABELS[0]),
             item(names[1], FASHION_MNIST_LABELS[0], review=True)]  # wrong; the third is missing
    figures = score_items(val, names, items, None)
    assert figures["accuracy"] == pytest.approx(1 / 3)
    assert figures["per_class"][FASHION_MNIST_LABELS[0]] == 1.0
    assert figures["routes"] == {"photo": 2, "error": 1}
    assert figures["needs_review_share"] == pytest.approx(2 / 3)  # flagged or missing
    assert figures["unflagged_accuracy"] == 1.0
    assert figures["model_versions"] == ["v5"]


METRICS = """# HELP tagger_preprocess_seconds decode and preprocess time of one chunk
# TYPE tagger_preprocess_seconds histogram
tagger_preprocess_seconds_bucket{{le="+Inf",queue="bulk"}} {chunks}
tagger_preprocess_seconds_count{{queue="bulk"}} {chunks}
tagger_preprocess_seconds_sum{{queue="bulk"}} {pre}
tagger_preprocess_seconds_count{{queue="interactive"}} 9.0
tagger_preprocess_seconds_sum{{queue="interactive"}} 99.0
# HELP tagger_inference_seconds forward pass time of one chunk
# TYPE tagger_inference_seconds histogram
tagger_inference_seconds_count{{queue="bulk"}} {chunks}
tagger_inference_seconds_sum{{queue="bulk"}} {inf}
# HELP tagger_batch_size images per batched forward pass (one per chunk)
# TYPE tagger_batch_size histogram
tagger_batch_size_count{{queue="bulk"}} {chunks}
tagger_batch_size_sum{{queue="bulk"}} {images}
"""


def test_worker_stages_come_from_the_bulk_histograms_of_one_job():
    before = stage_totals(METRICS.format(chunks=1.0, pre=1.0, inf=0.5, images=64.0))
    after = stage_totals(METRICS.format(chunks=4.0, pre=6.0, inf=1.5, images=564.0))
    assert before["preprocess_seconds_sum"] == 1.0 and "batch_size_sum" in before
    stages = worker_stages(stage_delta(before, after), wall_s=4.0)
    assert stages["chunks"] == 3 and stages["images"] == 500
    assert stages["preprocess_ms_per_image"] == 10.0 and stages["inference_ms_per_image"] == 2.0
    assert stages["predictor_busy_over_wall"] == 1.5
