"""The client's models (cli/schemas.py) and the API's response schemas agree field for field:
same names, same types (enums included), same required fields, nested models included.
Descriptions, titles, examples and the bounds the server checks on requests may differ;
nothing else may."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pydantic import BaseModel

from api import schemas as api_schemas
from api import schemas_training as api_training
from cli import schemas as client

# API model -> the client's model with the same fields.
PAIRS: dict[type[BaseModel], type[BaseModel]] = {
    api_schemas.JobPublic: client.Job,
    api_schemas.ClassifyPublic: client.ClassifyJob,
    api_schemas.Progress: client.Progress,
    api_schemas.ResultItem: client.ResultItem,
    api_schemas.ScoredLabelPublic: client.ScoredLabel,
    api_schemas.JobsPage: client.JobsPage,
    api_schemas.ResultsPage: client.ResultsPage,
    api_schemas.Health: client.Health,
    api_training.TrainingJobCreate: client.TrainingRequest,
    api_training.TrainingJobPublic: client.TrainingJob,
    api_training.TrainingProgress: client.TrainingProgress,
    api_training.EpochPublic: client.Epoch,
    api_training.TrainingJobsPage: client.TrainingJobsPage,
    api_training.ModelPublic: client.Model,
    api_training.ModelsPage: client.ModelsPage,
    api_training.DatasetPublic: client.Dataset,
    api_training.DatasetClass: client.DatasetClass,
    api_training.DatasetsPage: client.DatasetsPage,
}
NAMES = {api.__name__: ours.__name__ for api, ours in PAIRS.items()}
WORDING = {"title", "description", "examples", "default"}
# Checks on what a client sends (TrainingJobCreate's bounds, extra="forbid"): the server has
# applied them by the time a value is in an answer, and the client ignores unknown fields.
REQUEST_CHECKS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
                  "maxLength", "pattern", "additionalProperties"}


def normalised(node: Any, rename: dict[str, str]) -> Any:
    """A JSON schema without its wording, nested models referred to by the client's names."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in WORDING or key in REQUEST_CHECKS:
                continue
            if key == "$ref":
                name = value.rsplit("/", 1)[1]
                out[key] = rename.get(name, name)
            elif key == "$defs":
                out[key] = {rename.get(k, k): normalised(v, rename) for k, v in value.items()}
            else:
                out[key] = normalised(value, rename)
        return out
    if isinstance(node, list):
        return [normalised(item, rename) for item in node]
    return node


@pytest.mark.parametrize("api_model", list(PAIRS), ids=lambda m: m.__name__)
def test_the_client_model_has_the_apis_fields(api_model):
    ours = PAIRS[api_model]
    theirs = normalised(api_model.model_json_schema(), NAMES)
    mine = normalised(ours.model_json_schema(), {})
    assert set(mine["properties"]) == set(theirs["properties"])
    assert mine == theirs


def test_every_api_response_model_has_a_client_model():
    responses = {m for module in (api_schemas, api_training) for m in vars(module).values()
                 if isinstance(m, type) and issubclass(m, BaseModel)
                 and m.__module__ == module.__name__}
    requests_only = {api_schemas.JobCreate}  # form options: the client sends them as fields
    errors = {api_schemas.ErrorBody, api_schemas.ErrorDetail}  # become TaggerError
    assert responses - requests_only - errors == set(PAIRS)


def test_a_field_the_server_adds_later_is_ignored():
    job = client.Progress.model_validate({"total": 3, "done": 1, "failed": 1, "skipped": 0,
                                          "retried": 2})
    assert job.finished == 2 and not hasattr(job, "retried")


def test_the_client_models_import_neither_the_server_nor_torch():
    code = ("import sys, cli.schemas, cli.client; "
            "bad = [m for m in ('torch', 'fastapi', 'redis', 'api', 'store', 'celery')"
            " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
