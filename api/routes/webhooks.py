"""A tenant's webhook signing secret: what its receiver verifies callbacks with."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import SettingsDep, TenantDep
from api.openapi import error_responses
from api.schemas import examples
from worker.names import tenant_webhook_secret

router = APIRouter(prefix="/v1", tags=["webhooks"])


class WebhookSecret(BaseModel):
    model_config = examples({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                             "headers": ["webhook-id", "webhook-timestamp",
                                         "webhook-signature"]})

    secret: str = Field(description="whsec_<base64>: verify `webhook-signature` with it"
                                    " (Standard Webhooks)")
    headers: list[str] = Field(description="the headers every callback carries")


@router.get("/webhook-secret", response_model=WebhookSecret,
            responses=error_responses(401))
def webhook_secret(tenant: TenantDep, settings: SettingsDep) -> WebhookSecret:
    """The secret this tenant's callbacks are signed with (Standard Webhooks: `webhook-id`,
    `webhook-timestamp`, `webhook-signature`); other tenants' callbacks are signed with
    theirs, so a receiver that checks the signature and the timestamp rejects forgeries and
    replays."""
    return WebhookSecret(secret=tenant_webhook_secret(settings.webhook_secret, tenant.name),
                         headers=["webhook-id", "webhook-timestamp", "webhook-signature"])
