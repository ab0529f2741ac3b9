"""worker.trainer.train_config: a stored request becomes the TrainConfig the job runs."""

from __future__ import annotations

from core.recipes import recipe
from core.settings import Settings
from worker.trainer import train_config


def test_the_named_recipe_supplies_what_the_request_leaves_out():
    cfg = train_config({"recipe": "default", "epochs": 3, "seed": 7}, Settings())
    expected = recipe("default").model_copy(update={"epochs": 3, "seed": 7})
    assert cfg.model_dump(exclude={"threads", "device"}) == expected.model_dump(
        exclude={"threads", "device"})
    assert cfg.random_erasing == 0.25  # `default` keeps erasing; `default-fast` does not


def test_a_request_stored_without_a_recipe_runs_default_fast():
    assert train_config({"epochs": 2}, Settings()).random_erasing == 0.0


def test_a_dataset_is_labelled_in_its_parents_order(redis_url):
    """Folders sorted by name (`Ankle boot` first) come back labelled as the model it
    fine-tunes labels them (`T-shirt/top` is 0), preprocessed as that model preprocesses."""
    import redis

    from core.checkpoint import read_meta
    from core.labels import FASHION_MNIST_LABELS
    from core.models import PHOTO_MODEL_PATH
    from core.settings import Settings
    from store.datasets import DatasetStore
    from tests.conftest import png_bytes
    from worker.trainer import load_data

    client = redis.Redis.from_url(redis_url)
    folders = sorted(["T-shirt_top", *FASHION_MNIST_LABELS[1:]])
    dataset = DatasetStore(client).create("t", folders, [(i, png_bytes(i)) for i in range(10)])
    parent = read_meta(PHOTO_MODEL_PATH.read_bytes())
    data, info = load_data(client, Settings(), dataset["id"], parent)
    assert data.labels == tuple(parent.labels) == FASHION_MNIST_LABELS
    by_folder = dict(zip(folders, range(10), strict=True))
    assert info["classes"]["T-shirt_top"] == "T-shirt/top"
    assert sorted(data.targets.tolist()) == list(range(10))
    # The image stored under folder f is now labelled with the model's index of f's label.
    assert int(data.targets[by_folder["Bag"]]) == FASHION_MNIST_LABELS.index("Bag")
