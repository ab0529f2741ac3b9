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
