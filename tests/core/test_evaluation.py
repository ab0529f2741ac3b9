import pytest
import torch

from core.evaluation import compute_metrics, confusion_matrix


def test_confusion_matrix_rows_are_true_classes():
    targets = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 2, 0])
    cm = confusion_matrix(targets, predicted, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_metrics_per_class():
    targets = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 2, 0])
    m = compute_metrics(targets, predicted, ["a", "b", "c"])
    assert m.accuracy == pytest.approx(4 / 6)
    a, b, c = m.per_class
    assert (a.precision, a.recall, a.support) == (pytest.approx(0.5), pytest.approx(0.5), 2)
    assert (b.precision, b.recall) == (pytest.approx(0.5), pytest.approx(1.0))
    assert (c.precision, c.recall) == (pytest.approx(1.0), pytest.approx(2 / 3))
    assert c.f1 == pytest.approx(0.8)


def test_class_never_predicted_has_zero_precision_not_nan():
    m = compute_metrics(torch.tensor([0, 1]), torch.tensor([0, 0]), ["a", "b"])
    assert m.per_class[1].precision == 0.0 and m.per_class[1].recall == 0.0
