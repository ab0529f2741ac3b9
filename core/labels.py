"""The Fashion-MNIST label list, in the dataset's own index order (see docs/DESIGN.md), and
how a dataset's class names are matched to a model's labels."""

from __future__ import annotations

import re
from collections.abc import Sequence

FASHION_MNIST_LABELS: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def label_key(name: str) -> str:
    """A label as a folder name can spell it: lowercase, every run of other characters than
    letters and digits one "-". A class folder cannot hold a "/", so `T-shirt_top` (or
    `t-shirt top`) names the label `T-shirt/top`."""
    return re.sub(r"[^0-9a-z]+", "-", name.lower()).strip("-")


def match_labels(model_labels: Sequence[str], names: Sequence[str]) -> list[int]:
    """For each class name (a dataset's folders), the index of the model label it names (by
    label_key); raises ValueError naming what does not match one to one."""
    index = {label_key(label): i for i, label in enumerate(model_labels)}
    found = [index.get(label_key(name)) for name in names]
    unknown = [name for name, i in zip(names, found, strict=True) if i is None]
    missing = sorted(set(range(len(model_labels))) - {i for i in found if i is not None})
    if unknown or missing or len(set(found)) != len(found):
        parts = []
        if unknown:
            parts.append(f"classes that name no label of the model: {unknown}")
        if missing:
            parts.append(f"labels with no class: {[model_labels[i] for i in missing]}")
        if len(set(found)) != len(found) and not unknown:
            parts.append("two classes name the same label")
        raise ValueError("; ".join(parts) + f" (the model's labels: {list(model_labels)};"
                         " a class folder names a label with any punctuation, e.g."
                         " T-shirt_top for T-shirt/top)")
    return [i for i in found if i is not None]
