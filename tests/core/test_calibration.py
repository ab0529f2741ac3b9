import pytest
import torch

from core.calibration import (
    choose_threshold,
    confidences,
    coverage_table,
    cross_fit,
    fit_temperature,
    reliability,
)


def overconfident(n: int = 4000, true_t: float = 2.0, seed: int = 0):
    """Logits whose labels are drawn from softmax(logits / true_t): T = true_t calibrates."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 10, generator=g) * 4
    targets = torch.multinomial((logits / true_t).softmax(1), 1, generator=g).squeeze(1)
    return logits, targets


def test_temperature_recovers_the_true_one():
    logits, targets = overconfident()
    assert fit_temperature(logits, targets) == pytest.approx(2.0, rel=0.1)
    _, ece_raw = reliability(*correct_and_conf(logits, targets, 1.0))
    _, ece_fit = reliability(*correct_and_conf(logits, targets, fit_temperature(logits, targets)))
    assert ece_fit < ece_raw / 2


def correct_and_conf(logits, targets, t):
    conf, pred = confidences(logits, t)
    return conf, pred == targets


def test_threshold_is_the_lowest_that_keeps_the_accuracy():
    conf = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5], dtype=torch.float64)
    correct = torch.tensor([True, True, True, False, True])
    assert choose_threshold(conf, correct, 1.0) == 0.61
    assert choose_threshold(conf, correct, 0.8) == 0.0
    rows = {r.threshold: r for r in coverage_table(conf, correct)}
    assert rows[0.61].coverage == pytest.approx(0.6) and rows[0.61].accuracy == 1.0
    assert rows[1.0].kept == 0 and rows[1.0].accuracy is None
    assert choose_threshold(conf, torch.zeros(5, dtype=torch.bool), 0.9) is None


def test_reliability_bins_cover_every_item():
    logits, targets = overconfident(1000)
    conf, correct = correct_and_conf(logits, targets, 1.0)
    bins, ece = reliability(conf, correct)
    assert sum(b.count for b in bins) == 1000 and 0 <= ece <= 1


def test_cross_fit_measures_on_held_out_halves():
    logits, targets = overconfident(2000)
    out = cross_fit(logits, targets, min_accuracy=0.9)
    assert len(out["folds"]) == 2 and sum(f["items"] for f in out["folds"]) == 2000
    assert 0 < out["coverage"] < 1 and out["accuracy_unflagged"] > 0.85
