"""A tenant's webhook signing secret: what its receiver verifies callbacks with."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import SettingsDep, TenantDep
from api.schemas import ErrorBody
from worker.names import tenant_webhook_secret

router = APIRouter(prefix="/v1", tags=["webhooks"])


class WebhookSecret(BaseModel):
    secret: str = Field(description="whsec_<base64>: verify `webhook-signature` with it"
                                    " (Standard Webhooks)")
    headers: list[str] = Field(description="the headers every callback carries")


@router.get("/webhook-secret", response_model=WebhookSecret,
            responses={401: {"model": ErrorBody}})
def webhook_secret(tenant: TenantDep, settings: SettingsDep) -> WebhookSecret:
    """The secret this tenant's callbacks are signed with (Standard Webhooks: `webhook-id`,
    `webhook-timestamp`, `webhook-signature`); other tenants' callbacks are signed with
    theirs, so a receiver that checks the signature and the timestamp rejects forgeries and
    replays."""
    return WebhookSecret(secret=tenant_webhook_secret(settings.webhook_secret, tenant.name),
                         headers=["webhook-id", "webhook-timestamp", "webhook-signature"])
