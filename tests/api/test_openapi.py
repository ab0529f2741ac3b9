"""The served OpenAPI schema: what a client generated from it needs (api.openapi). The client
itself is generated and used in tests/api/test_openapi_client.py."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from api import schemas, schemas_training
from api.main import create_app
from api.routes.webhooks import WebhookSecret
from core.settings import Settings

BINARY = {"type": "string", "format": "binary"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return create_app(Settings(log_format="text")).openapi()


def operations(schema: dict[str, Any]):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_operation_ids_are_the_route_names(schema):
    ids = {(method, path): op["operationId"] for path, method, op in operations(schema)}
    assert ids[("post", "/v1/jobs")] == "create_job"
    assert ids[("post", "/v1/datasets")] == "create_dataset"
    assert ids[("get", "/v1/jobs/{job_id}/results")] == "get_results"
    assert len(set(ids.values())) == len(ids)


def test_every_tag_is_described(schema):
    described = {tag["name"] for tag in schema["tags"] if tag.get("description")}
    used = {tag for _, _, op in operations(schema) for tag in op.get("tags", [])}
    assert used <= described


@pytest.mark.parametrize("path,form,files,options", [
    ("/v1/jobs", "CreateJobForm", {"archive", "manifest"},
     {"top_k", "review_threshold", "callback_url", "model", "deadline_s"}),
    ("/v1/datasets", "CreateDatasetForm", {"archive"}, {"name"}),
    ("/v1/classify", "ClassifyForm", {"file"}, {"top_k", "review_threshold"}),
])
def test_multipart_bodies_are_one_flat_object_with_binary_parts(schema, path, form, files,
                                                                 options):
    body = schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"] == {"$ref": f"#/components/schemas/{form}"}
    flat = schema["components"]["schemas"][form]
    assert flat["type"] == "object" and "allOf" not in flat and "anyOf" not in flat
    properties = flat["properties"]
    assert files | options <= set(properties)
    for name in files:
        assert {k: properties[name][k] for k in BINARY} == BINARY, name
    for name in options:  # a form part is sent or not, never null
        assert "anyOf" not in properties[name] and "format" not in properties[name], name
    if path == "/v1/jobs":
        assert properties["files"]["type"] == "array" and properties["files"]["items"] == BINARY
    text = str(schema)
    assert "contentMediaType': 'application/octet-stream" not in text
    assert "Body_" not in text and "'JobCreate'" not in text  # the replaced models are gone


def test_429_and_503_with_retry_after_on_every_v1_route(schema):
    for path, method, op in operations(schema):
        if not path.startswith("/v1/"):
            continue
        for status in ("429", "503"):
            answer = op["responses"].get(status)
            assert answer is not None, (method, path, status)
            assert answer["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
            assert answer["headers"]["Retry-After"]["required"] is True, (method, path)


@pytest.mark.parametrize("path,payload", [
    ("/v1/jobs/{job_id}/events", "JobPublic"),
    ("/v1/training-jobs/{job_id}/events", "TrainingJobPublic"),
])
def test_event_streams_name_their_events_and_payload(schema, path, payload):
    ok = schema["paths"][path]["get"]["responses"]["200"]
    assert set(ok["content"]) == {"text/event-stream"}  # no JSON body is promised
    stream = ok["content"]["text/event-stream"]
    event = stream["itemSchema"]["properties"]
    assert event["event"]["enum"] == ["progress", "end"]
    assert event["data"]["contentSchema"] == {"$ref": f"#/components/schemas/{payload}"}
    assert payload in ok["description"] and "`event: end`" in ok["description"]


MODELS = [model for module in (schemas, schemas_training) for model in vars(module).values()
          if isinstance(model, type) and issubclass(model, BaseModel)
          and model.__module__ == module.__name__] + [WebhookSecret]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_every_example_is_valid_for_its_model(model):
    found = model.model_json_schema(mode="serialization").get("examples", [])
    field_examples = {name: field.examples for name, field in model.model_fields.items()
                      if field.examples}
    assert found or field_examples, f"{model.__name__} has no example"
    for example in found:
        model.model_validate(example)
    for name, values in field_examples.items():
        for value in values:
            model.model_validate({name: value})
