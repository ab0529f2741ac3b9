"""Photo fixtures for tests/core: the CC0 fixture photos, a small real-photos folder built
from them, and a photo checkpoint routed to the tiny Fashion-MNIST model."""

from pathlib import Path

import pytest

from core.photos import MANIFEST

PHOTOS = Path(__file__).resolve().parent.parent / "fixtures" / "photos"
LABEL_INDEX = {"T-shirt_top": 0, "Trouser": 1, "Coat": 4, "Shirt": 6, "Sneaker": 7,
               "Ankle_boot": 9}


@pytest.fixture(scope="session")
def fixture_photos() -> list[Path]:
    """The six CC0 photos, sorted; the label is the file name's prefix."""
    return sorted(PHOTOS.glob("*.jpg"))


@pytest.fixture(scope="session")
def photos_root(tmp_path_factory, fixture_photos) -> Path:
    """A real-photos folder: the six photos in train (clothingds), the same bytes again as
    val and as a second, unlicensed source, so filters have something to tell apart."""
    root = tmp_path_factory.mktemp("real-photos")
    (root / "images").mkdir()
    lines = ["file,label_index,label_name,split,source_repo,source_path,source_category"]
    repos = {"clothingds": "alexeygrigorev/clothing-dataset",
             "ganesh": "GaneshNeupane01/Fashion-Recommendation-System"}
    for path in fixture_photos:
        label = path.name.split("--")[0]
        for split in ("train", "val"):
            for tag, repo in repos.items():
                name = f"images/{split}-{tag}-{path.name}"
                (root / name).write_bytes(path.read_bytes())
                lines.append(f"{name},{LABEL_INDEX[label]},{label},{split},{repo},x,y")
    (root / MANIFEST).write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def photo_model_path(tmp_path_factory, tiny_model_path) -> Path:
    """The tiny model's weights, perturbed, saved as a photo model: photo-seg-v1, T = 1.5,
    review below 0.3, Fashion-MNIST images routed to the tiny model."""
    import torch

    from core.checkpoint import load_checkpoint, save_checkpoint

    model, meta = load_checkpoint(tiny_model_path)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    photo_meta = meta.model_copy(update={
        "preprocessing": "photo-seg-v1", "temperature": 1.5, "review_below": 0.3,
        "route_fashion_mnist_to": meta.weights_sha256, "tta": "hflip"})
    path = tmp_path_factory.mktemp("photo-model") / "photo.safetensors"
    return save_checkpoint(path, model, photo_meta)
