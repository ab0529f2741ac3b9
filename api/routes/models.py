"""The model registry: list versions, inspect one, activate one (operator), download one.

Activation takes effect for the next job a worker starts (see worker.tasks): no restart.
Rolling back is activating an older version; versions are immutable and never deleted.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api.deps import OperatorDep, RegistryDep, TenantDep
from api.errors import ApiError
from api.openapi import error_responses
from api.schemas_training import ModelPublic, ModelsPage
from api.trainingviews import model_or_404, public_model

router = APIRouter(prefix="/v1/models", tags=["models"])

ERRORS = error_responses(401, 403, 404, 409, 422)


@router.get("", response_model=ModelsPage, responses=ERRORS)
def list_models(_: TenantDep, registry: RegistryDep) -> ModelsPage:
    """Every version with its metrics and labels, oldest first, and which one is active."""
    active = registry.active()
    return ModelsPage(items=[public_model(r, active) for r in registry.list_versions()],
                      active=active)


@router.get("/{version}", response_model=ModelPublic, responses=ERRORS)
def get_model(version: str, _: TenantDep, registry: RegistryDep) -> ModelPublic:
    return public_model(model_or_404(registry, version), registry.active())


@router.post("/{version}/activate", response_model=ModelPublic, responses=ERRORS)
def activate_model(version: str, _: OperatorDep, registry: RegistryDep,
                   force: Annotated[bool, Query(description="activate even if its labels"
                                                " differ from the active version's")] = False
                   ) -> ModelPublic:
    """Serve this version for new jobs (jobs already started keep theirs). Roll back by
    activating an older version. A version whose labels differ from the active one's (a model
    of a tenant's own dataset) is refused (409) unless `force=true`: every tenant's jobs
    would get those labels."""
    record = model_or_404(registry, version)
    active_version = registry.active()
    active = registry.get(active_version) if active_version else None
    if active is not None and active.labels != record.labels and not force:
        raise ApiError(409, f"{version} has labels {record.labels}, the active {active.version}"
                            f" has {active.labels}; pass force=true to activate it anyway",
                       "labels_differ")
    if not registry.activate(version):
        raise ApiError(404, "model version not found")
    return public_model(record, version)


@router.get("/{version}/download", responses=ERRORS | {
    200: {"content": {"application/octet-stream": {}}}})
def download_model(
    version: str,
    _: TenantDep,
    registry: RegistryDep,
    fmt: Annotated[Literal["safetensors", "onnx"], Query(alias="format")] = "safetensors",
) -> Response:
    """The checkpoint (`safetensors`: weights, metadata in the header) or its ONNX export
    (input `images` (N, 1, 28, 28) float32 in [0, 1], output `logits`)."""
    record = model_or_404(registry, version)
    data = registry.checkpoint(version) if fmt == "safetensors" else registry.onnx(version)
    if data is None:
        # Only a seeded version can lack ONNX, until the first worker loads it (seconds).
        raise ApiError(409, f"the ONNX export of {version} is not ready yet; retry shortly",
                       "onnx_pending", headers={"Retry-After": "5"})
    filename = f"fashion-tagger-{version}.{fmt}"
    return Response(data, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-Weights-SHA256": record.meta.get("weights_sha256", "")})
