"""Labelled datasets for training: upload a zip of class folders, inspect it. A dataset
belongs to the tenant that uploaded it: another tenant's answers 404 (an operator sees
every tenant's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from api.datasets import read_dataset_zip
from api.deps import DatasetStoreDep, SettingsDep, TenantDep
from api.errors import not_found
from api.openapi import error_responses
from api.schemas_training import DatasetPublic, DatasetsPage
from api.trainingviews import owner_filter

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

ERRORS = error_responses(400, 401, 403, 404, 413, 415, 422)


@router.post("", response_model=DatasetPublic, status_code=201, responses=ERRORS)
def create_dataset(
    tenant: TenantDep,
    settings: SettingsDep,
    datasets: DatasetStoreDep,
    response: Response,
    archive: Annotated[UploadFile, File(description="zip: <class>/<image>, optionally inside"
                                                    " one top folder")],
    name: Annotated[str | None, Form(max_length=100, description="for people")] = None,
) -> DatasetPublic:
    """Validate and store a dataset: at least 2 classes, TAGGER_DATASET_MIN_IMAGES_PER_CLASS
    images in each, every file a decodable image (else 422 naming the bad files). Train on it
    with `POST /v1/training-jobs {"dataset": "<id>"}`; its class folder names become labels."""
    valid = read_dataset_zip(archive, settings)
    dataset = datasets.create(tenant.name, valid.labels, valid.images, name)
    response.headers["Location"] = f"/v1/datasets/{dataset['id']}"
    return DatasetPublic.model_validate(dataset)


@router.get("", response_model=DatasetsPage, responses=ERRORS)
def list_datasets(tenant: TenantDep, datasets: DatasetStoreDep,
                  limit: Annotated[int, Query(ge=1, le=100)] = 20) -> DatasetsPage:
    """The caller's datasets (an operator: everyone's), newest first."""
    return DatasetsPage(items=[DatasetPublic.model_validate(d) for d in
                               datasets.list_datasets(limit, owner_filter(tenant))])


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=ERRORS)
def get_dataset(dataset_id: str, tenant: TenantDep, datasets: DatasetStoreDep
                ) -> DatasetPublic:
    dataset = datasets.get(dataset_id, owner_filter(tenant))
    if dataset is None:
        raise not_found("dataset")
    return DatasetPublic.model_validate(dataset)
