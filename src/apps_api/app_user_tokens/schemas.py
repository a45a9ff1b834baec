"""Wire shapes of the app-user tokens of an owned app's installation."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from apps_api.kit.schemas import InputSchema, Schema, UTCDateTime


class OwnedAppUserTokenInput(InputSchema):
    expires_at: datetime | None = Field(
        default=None, description="When the token stops working (ISO-8601; no offset means UTC); null: never."
    )


class OwnedAppUserToken(Schema):
    id: uuid.UUID
    app_user_id: uuid.UUID = Field(description="The installation's app user, whom the token acts as.")
    installation_id: uuid.UUID
    organization_id: uuid.UUID = Field(description="The organization that installed the app.")
    created_at: UTCDateTime
    expires_at: UTCDateTime | None


class NewOwnedAppUserToken(OwnedAppUserToken):
    token: str = Field(
        description=(
            "The key, for `Authorization: Token <token>`. Shown only in this answer: only its digest is kept."
        )
    )
