import pytest
import torch

from core.recipes import TrainConfig, recipe
from core.runs import CONFUSION_FILE, CURVES_FILE, METRICS_FILE, SERVED_LIKE_PARENT, run_training
from core.training import TrainingCancelled, train


def quick(**overrides) -> TrainConfig:
    base = dict(arch="default", epochs=2, batch_size=64, threads=1, device="cpu", seed=7)
    return TrainConfig(**{**base, **overrides})


def test_tiny_training_run_lowers_the_loss(small_train):
    reports = []
    result = train(quick(epochs=3), small_train, None, on_progress=reports.append)
    losses = [h.train_loss for h in result.history]
    assert len(losses) == 3 and losses[-1] < losses[0]
    epoch_ends = [r for r in reports if r.epoch_end]
    assert [r.epoch for r in epoch_ends] == [1, 2, 3]
    steps = [r for r in reports if not r.epoch_end and r.epoch == 1]
    assert steps[-1].step == steps[-1].steps == 19  # ceil(1200 / 64)


def test_same_seed_same_weights(small_train):
    subset = small_train.subset(torch.arange(256))
    a = train(quick(epochs=1), subset, None).model.state_dict()
    b = train(quick(epochs=1), subset, None).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cancel_hook_stops_between_steps(small_train):
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(TrainingCancelled):
        train(quick(), small_train, None, should_stop=should_stop)
    assert len(calls) == 4


def test_run_writes_model_metrics_and_plots(tmp_path, small_train):
    out = run_training(quick(epochs=1, max_train_items=600), small_train, tmp_path,
                       {"name": "slice"})
    assert out.model_path.exists()
    assert out.val_metrics is not None and 45 <= out.val_metrics.count <= 55  # ~600 / 12
    for name in (METRICS_FILE, CURVES_FILE, CONFUSION_FILE):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / CURVES_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_recipes_and_unknown_recipe():
    assert recipe("baseline").arch == "baseline" and recipe("baseline").epochs == 5
    assert recipe("baseline").optimizer == "adam" and recipe("baseline").lr == 1e-3
    with pytest.raises(ValueError, match="baseline, default-fast, default, finetune"):
        recipe("fastest")


def test_fine_tune_starts_from_the_parent_and_records_it(tmp_path, small_train, tiny_model_path):
    from core.checkpoint import load_checkpoint

    parent_model, parent_meta = load_checkpoint(tiny_model_path)
    cfg = quick(epochs=1, lr=1e-4, schedule="cosine", ema_decay=0.99, max_train_items=300)
    out = run_training(cfg, small_train, tmp_path, {"name": "slice"},
                       init_state=parent_model.state_dict(), parent=parent_meta)
    _, meta = load_checkpoint(out.model_path)
    assert meta.parent["weights_sha256"] == parent_meta.weights_sha256
    assert meta.train_config["ema_decay"] == 0.99


def test_a_fine_tune_is_served_as_its_parent(tmp_path, small_train, tiny_model_path):
    """A photo model fine-tuned on a merchant's photos keeps how its parent is served: its
    preprocessing, test-time augmentation, calibration and the partner it routes to."""
    from core.checkpoint import load_checkpoint

    parent_model, parent_meta = load_checkpoint(tiny_model_path)
    parent_meta = parent_meta.model_copy(update={
        "preprocessing": "photo-seg-v1", "tta": "hflip", "tta_below": 0.7,
        "temperature": 0.66, "review_below": 0.8, "route_fashion_mnist_to": "ab" * 32})
    out = run_training(quick(epochs=1, max_train_items=200), small_train, tmp_path,
                       {"name": "slice"}, init_state=parent_model.state_dict(),
                       parent=parent_meta)
    _, meta = load_checkpoint(out.model_path)
    assert {name: getattr(meta, name) for name in SERVED_LIKE_PARENT} == {
        name: getattr(parent_meta, name) for name in SERVED_LIKE_PARENT}


def test_fine_tune_refuses_another_arch(tmp_path, small_train, tiny_model_path):
    from core.checkpoint import load_checkpoint

    _, parent_meta = load_checkpoint(tiny_model_path)
    with pytest.raises(ValueError, match="init_from model has arch 'default', not 'baseline'"):
        run_training(quick(arch="baseline", epochs=1), small_train, tmp_path, {"name": "x"},
                     parent=parent_meta)


def test_ema_returns_the_averaged_weights(small_train):
    subset = small_train.subset(torch.arange(256))
    plain = train(quick(epochs=1), subset, None).model.state_dict()
    averaged = train(quick(epochs=1, ema_decay=0.9), subset, None).model.state_dict()
    assert not torch.equal(plain["classifier.2.weight"], averaged["classifier.2.weight"])
