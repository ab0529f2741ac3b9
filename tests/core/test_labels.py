"""A dataset's class names matched to a model's labels."""

import pytest

from core.labels import FASHION_MNIST_LABELS, label_key, match_labels


def test_a_folder_names_a_label_with_any_punctuation():
    assert label_key("T-shirt/top") == label_key("T-shirt_top") == label_key("t-shirt top")
    assert label_key("Ankle boot") == label_key("ankle_boot") != label_key("boot")


def test_sorted_folders_are_mapped_to_the_models_order():
    folders = sorted(["T-shirt_top", *FASHION_MNIST_LABELS[1:]])
    order = match_labels(FASHION_MNIST_LABELS, folders)
    assert [FASHION_MNIST_LABELS[i] for i in order] == [
        "Ankle boot", "Bag", "Coat", "Dress", "Pullover", "Sandal", "Shirt", "Sneaker",
        "T-shirt/top", "Trouser"]


@pytest.mark.parametrize("folders, fragment", [
    (["Bag", "Coat"], "labels with no class"),
    ([*FASHION_MNIST_LABELS, "Hat"], "classes that name no label of the model: ['Hat']"),
    ([*FASHION_MNIST_LABELS[1:], "T-shirt_top", "t-shirt top"], "two classes name the same"),
])
def test_what_does_not_match_one_to_one_is_named(folders, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        match_labels(FASHION_MNIST_LABELS, folders)
