"""The real-photos set (`../shared/real-photos`): its manifest, its licence rule, and photos
loaded through the same preprocessing the service applies.

The manifest fixes a train/val split. The val split is never trained on: `load_photos` refuses
it for training. Only the CC0 source (`clothingds`) may train weights that ship with the
project; the other sources state no licence and serve evaluation and benchmark runs whose
weights are not shipped.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from core.data import ImageSet
from core.labels import FASHION_MNIST_LABELS
from core.preprocessing import DEFAULT_MAX_PIXELS, preprocess

MANIFEST = "manifest.csv"
# manifest `source_repo` -> the tag used in file names, options and reports
SOURCE_TAGS: dict[str, str] = {
    "alexeygrigorev/clothing-dataset": "clothingds",
    "RuturajChitale/Fassion-Recommendation-System": "ruturaj",
    "GaneshNeupane01/Fashion-Recommendation-System": "ganesh",
    "VINI-DS001/ClassificadorKNN": "vinids",
}
SOURCES = tuple(SOURCE_TAGS.values())
LICENSED_SOURCES = ("clothingds",)  # CC0 (SOURCES.md); the rest state no licence
SPLITS = ("train", "val")
Purpose = Literal["train", "evaluate"]


@dataclass(frozen=True)
class PhotoRecord:
    file: str  # path inside the real-photos folder
    label_index: int
    split: str
    source: str  # a SOURCE_TAGS value


@dataclass(frozen=True)
class PhotoSet:
    """Preprocessed photos (`images`: (N, 28, 28) uint8) and the record of each."""

    images: ImageSet
    records: list[PhotoRecord]
    info: dict  # what a checkpoint records about the data: split, sources, checksums

    def sources(self) -> list[str]:
        return [r.source for r in self.records]


def check_sources(sources: list[str] | tuple[str, ...]) -> list[str]:
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown or not sources:
        raise ValueError(f"Unknown photo sources {unknown or sources}; choose from:"
                         f" {', '.join(SOURCES)}")
    return [s for s in SOURCES if s in sources]  # canonical order


def unlicensed(sources: list[str] | tuple[str, ...]) -> list[str]:
    return [s for s in sources if s not in LICENSED_SOURCES]


def parse_sources(value: str) -> list[str]:
    """"clothingds,ganesh" -> the sources in canonical order; "all" -> every source."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    return list(SOURCES) if names == ["all"] else check_sources(names)


def check_licence(sources: list[str] | tuple[str, ...], out: Path) -> None:
    """Weights written under core/models ship with the project: CC0 photos only."""
    from core.models import SHIPPED_MODEL_PATH

    shipped_dir = SHIPPED_MODEL_PATH.parent.resolve()
    bad = unlicensed(sources)
    out = Path(out).resolve()
    if bad and (out == shipped_dir or shipped_dir in out.parents):
        raise ValueError(f"photo sources {', '.join(bad)} state no licence: a model trained on"
                         f" them may not be written under {shipped_dir} (shipped weights are"
                         " trained on Fashion-MNIST and CC0 photos only)")


def read_manifest(root: Path) -> list[PhotoRecord]:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} under {root} (the real-photos folder:"
                                " --photos-dir)")
    with path.open(newline="") as fh:
        return [PhotoRecord(row["file"], int(row["label_index"]), row["split"],
                            SOURCE_TAGS.get(row["source_repo"], row["source_repo"]))
                for row in csv.DictReader(fh)]


def select(records: list[PhotoRecord], split: str, sources: list[str] | tuple[str, ...],
           purpose: Purpose) -> list[PhotoRecord]:
    """The records of one split and some sources; the val split is never for training."""
    if split not in SPLITS:
        raise ValueError(f"Unknown photo split {split!r}; choose one of: {', '.join(SPLITS)}")
    if purpose == "train" and split != "train":
        raise ValueError("the real-photos val split is for evaluation only, never for training")
    sources = check_sources(sources)
    return [r for r in records if r.split == split and r.source in sources]


def load_photos(root: Path, split: str, sources: list[str] | tuple[str, ...],
                preprocessing: str, purpose: Purpose,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> PhotoSet:
    """Photos of `split` from `sources`, each through `preprocessing` as served."""
    root = Path(root)
    records = select(read_manifest(root), split, sources, purpose)
    digest = hashlib.sha256()
    arrays = []
    for r in records:
        data = (root / r.file).read_bytes()
        digest.update(f"{r.file}\0{r.label_index}\0".encode())
        digest.update(hashlib.sha256(data).digest())
        arrays.append(preprocess(data, max_pixels, preprocessing))
    images = (torch.from_numpy(np.stack(arrays)) if arrays
              else torch.empty(0, 28, 28, dtype=torch.uint8))
    targets = torch.tensor([r.label_index for r in records], dtype=torch.long)
    info = {"name": "real-photos", "split": split, "sources": check_sources(sources),
            "items": len(records), "files_sha256": digest.hexdigest(),
            "preprocessing": preprocessing,
            "per_source": {s: sum(r.source == s for r in records) for s in SOURCES
                           if any(r.source == s for r in records)}}
    return PhotoSet(ImageSet(images, targets, FASHION_MNIST_LABELS), records, info)


def load_photo_variants(root: Path, sources: list[str] | tuple[str, ...], preprocessing: str,
                        variants: int, seed: int,
                        max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[PhotoSet, torch.Tensor]:
    """The train split of `sources` for training: the PhotoSet as served (variant 0), and
    (N, 1 + variants, 28, 28) uint8 where variants 1.. are random re-framings of each photo
    (core.photo_augment.jitter) put through the same preprocessing."""
    import random

    from core.photo_augment import photo_variants
    from core.preprocessing import decode_photo, get_preprocessing

    root = Path(root)
    photos = load_photos(root, "train", sources, preprocessing, "train", max_pixels)
    convert = get_preprocessing(preprocessing).convert
    rng = random.Random(seed)
    stacks = []
    for record, served in zip(photos.records, photos.images.images.numpy(), strict=True):
        img = decode_photo((root / record.file).read_bytes(), max_pixels)
        if get_preprocessing(preprocessing).mode == "L":
            img = img.convert("L")
        stacks.append(np.stack([served, *photo_variants(img, convert, variants, rng)]))
    out = (torch.from_numpy(np.stack(stacks)) if stacks
           else torch.empty(0, 1 + variants, 28, 28, dtype=torch.uint8))
    return photos, out
