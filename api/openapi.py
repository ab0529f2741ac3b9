"""What the served OpenAPI schema says beyond FastAPI's defaults, so that a client generated
from it (openapi-python-client, tests/api/test_openapi_client.py) can do everything the
service offers (docs/DESIGN.md, "The HTTP API"):

- operation ids are the route functions' names (`create_job`, not `create_job_v1_jobs_post`);
- tags with descriptions;
- the answers any /v1/ route can give besides its own: 429 (the tenant's request rate or
  quotas) and 503 (at capacity, Redis unreachable), each with `Retry-After` (api.limits);
- event streams described: the event names and the JSON model each one carries;
- every multipart body as one flat object whose file parts are `format: binary`. FastAPI
  renders a form model plus `File()` parameters as an `allOf` over the model with
  `contentMediaType` strings, from which generators build a body without the files.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from api.schemas import ErrorBody

REF_PREFIX = "#/components/schemas/"

TAGS: list[dict[str, str]] = [
    {"name": "classify", "description": "One image, answered within `wait` seconds when it"
     " can be (else a job to poll). The interactive path."},
    {"name": "jobs", "description": "Bulk jobs: many images as `files`, one `archive`"
     " (.zip/.tar/.tar.gz) or a `manifest` of image URLs keyed by SKU. Submitting answers 202"
     " with the job at once; list, inspect and cancel your jobs."},
    {"name": "results", "description": "A job's results, paged JSON or a CSV/JSONL export,"
     " and its progress as Server-Sent Events."},
    {"name": "datasets", "description": "Labelled datasets for training: a zip of class"
     " folders, owned by the tenant that uploads it."},
    {"name": "training", "description": "Queued training runs on the service's own"
     " datasets or yours; each registers a new model version."},
    {"name": "models", "description": "The model registry: versions with their metrics,"
     " the active one (operators activate), downloads as safetensors or ONNX."},
    {"name": "webhooks", "description": "The secret your job callbacks are signed with"
     " (Standard Webhooks)."},
    {"name": "health", "description": "Liveness and readiness, for probes; no key needed."},
]

RETRY_AFTER = {"Retry-After": {
    "description": "seconds to wait before trying again", "required": True,
    "schema": {"type": "integer", "minimum": 1, "examples": [30]}}}


def _error_example(code: str, message: str) -> dict[str, Any]:
    return {"application/json": {"example": {"error": {"code": code, "message": message}}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ErrorBody answers of a /v1/ route: its own `statuses`, plus the 429 and 503 that
    the request guard (api.limits) can give on any of them."""
    answers: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody} for status in statuses}
    answers[429] = {
        "model": ErrorBody, "headers": RETRY_AFTER,
        "description": "Too many requests: `rate_limited` (the tenant's request rate) or"
                       " `quota_exceeded` (its active jobs, queued items or bytes, event"
                       " streams or training jobs). Retry after `Retry-After` seconds.",
        "content": _error_example("rate_limited",
                                  "more than 100 per 1 second requests for this tenant"
                                  " (its quota)")}
    answers[503] = {
        "model": ErrorBody, "headers": RETRY_AFTER,
        "description": "Service unavailable: `at_capacity` (the job store is nearly full,"
                       " or too many images are waiting) or `unavailable` (Redis"
                       " unreachable). Retry after `Retry-After` seconds.",
        "content": _error_example("at_capacity", "the service is at capacity (too many"
                                  " images are waiting); retry later")}
    return answers


def event_stream_response(payload: type[BaseModel], what: str) -> dict[int, dict[str, Any]]:
    """The 200 of an event stream (api.sse): `progress` events, then one `end` event, each
    with `payload` as one line of JSON. Described both ways: `schema` for OpenAPI 3.1 tools
    (the whole body is text), `itemSchema` (OpenAPI 3.2, as FastAPI writes for its own event
    streams) for one event."""
    ref = {"$ref": REF_PREFIX + payload.__name__}
    description = (
        f"Server-Sent Events (`text/event-stream`): an `event: progress` whenever {what}"
        f" changes (at most every 0.5 s), then one `event: end` with its final state, and the"
        f" stream closes. The `data:` line of both is one {payload.__name__} as JSON. Lines"
        " starting with `:` are keep-alive comments.")
    return {200: {"description": description, "content": {"text/event-stream": {
        "schema": {"type": "string", "description": description},
        "itemSchema": {
            "type": "object", "required": ["event", "data"],
            "properties": {
                "event": {"type": "string", "enum": ["progress", "end"]},
                "data": {"type": "string", "contentMediaType": "application/json",
                         "contentSchema": ref}}},
        "example": "event: progress\ndata: {\"id\": \"...\", \"status\": \"running\", ...}"
                   "\n\nevent: end\ndata: {\"id\": \"...\", \"status\": \"succeeded\", ...}"
                   "\n\n"}}}}


def operation_id(route: APIRoute) -> str:
    """Operation ids (and so a generated client's function names) are the route functions'."""
    return route.name


def install_openapi(app: FastAPI) -> None:
    """Serve FastAPI's schema with every multipart body flattened (built once, cached)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            flatten_multipart(generate())  # FastAPI caches what it returns: fixed in place
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def flatten_multipart(schema: dict[str, Any]) -> None:
    """Each multipart/form-data body becomes the component `<OperationId>Form`: one object
    with the form model's fields and the file parts side by side."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    replaced: set[str] = set()
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            content = (operation.get("requestBody", {}).get("content", {})
                       .get("multipart/form-data"))
            if content is None:
                continue
            replaced |= _refs(content["schema"], components)
            name = _camel(operation["operationId"]) + "Form"
            components[name] = _flat(content["schema"], components) | {"title": name}
            content["schema"] = {"$ref": REF_PREFIX + name}
    # The Body_* models, and the form models nothing else refers to now (until none is left:
    # a model may be referred to only by another one that goes).
    unused = True
    while unused:
        unused = replaced & components.keys() - _refs(schema, {})
        for name in unused:
            del components[name]


def _flat(body: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    body = _resolved(body, components)
    parts = [_resolved(part, components) for part in body.get("allOf", [])] + [body]
    properties: dict[str, Any] = {}
    required: list[str] = []
    for part in parts:
        properties |= {name: _part(field) for name, field in part.get("properties", {}).items()}
        required += [name for name in part.get("required", []) if name not in required]
    description = body.get("description") or next(
        (part["description"] for part in parts if part.get("description")), None)
    flat: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        flat["required"] = required
    if description:
        flat["description"] = description
    return flat


def _part(field: dict[str, Any]) -> dict[str, Any]:
    """One form field. A part is present or absent, never null: a nullable field loses its
    null (a generated client would send the text "None"); a file is `format: binary`."""
    field = dict(field)
    options = field.pop("anyOf", None)
    if options is not None:
        present = [option for option in options if option.get("type") != "null"]
        if len(present) == 1:
            field = present[0] | field
            if "default" in field and field["default"] is None:
                del field["default"]
        else:
            field["anyOf"] = present
    if _is_file(field):
        field = {k: v for k, v in field.items() if k != "contentMediaType"} | {
            "type": "string", "format": "binary"}
    elif field.get("type") == "array" and _is_file(field.get("items", {})):
        field["items"] = {"type": "string", "format": "binary"}
    return field


def _is_file(field: dict[str, Any]) -> bool:
    return field.get("type") == "string" and (
        "contentMediaType" in field or field.get("format") == "binary")


def _resolved(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    return components[ref.removeprefix(REF_PREFIX)] if ref.startswith(REF_PREFIX) else schema


def _refs(schema: dict[str, Any], components: dict[str, Any]) -> set[str]:
    """The components `schema` refers to, and those they refer to (when in `components`)."""
    found: set[str] = set()
    todo = [schema]
    while todo:
        for name in re.findall(f'"{re.escape(REF_PREFIX)}([^"]+)"', json.dumps(todo.pop())):
            if name not in found:
                found.add(name)
                if name in components:
                    todo.append(components[name])
    return found


def _camel(name: str) -> str:
    return "".join(word[:1].upper() + word[1:] for word in name.split("_"))
