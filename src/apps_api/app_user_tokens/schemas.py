"""Wire shapes of the app-user tokens of an owned app's installation."""

from __future__ import annotations

import uuid

from pydantic import Field

from apps_api.kit.schemas import InputDateTime, InputSchema, Schema, UTCDateTime, request_body, resource_view


class OwnedAppUserTokenInput(InputSchema):
    """Body of minting an app-user token (optional: a token that never expires)."""

    model_config = request_body(example={"expires_at": "2027-01-01T00:00:00Z"})

    expires_at: InputDateTime | None = Field(
        default=None, description="When the token stops working (ISO-8601; no offset means UTC); null: never."
    )


class OwnedAppUserToken(Schema):
    """An API token of an installation's app user, minted by the app's provider (never its key)."""

    model_config = resource_view()

    id: uuid.UUID = Field(description="The token's ID (to revoke it).")
    app_user_id: uuid.UUID = Field(description="The installation's app user, whom the token acts as.")
    installation_id: uuid.UUID = Field(description="The installation whose app user the token acts as.")
    organization_id: uuid.UUID = Field(description="The organization that installed the app.")
    created_at: UTCDateTime = Field(description="When the token was minted.")
    expires_at: UTCDateTime | None = Field(description="When the token stops working; null: never.")


class NewOwnedAppUserToken(OwnedAppUserToken):
    token: str = Field(
        description=(
            "The key, for `Authorization: Token <token>`. Shown only in this answer: only its digest is kept."
        )
    )
