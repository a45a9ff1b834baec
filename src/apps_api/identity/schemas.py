"""Wire shapes of the token endpoint (RFC 6749 sections 5.1 and 5.2)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from apps_api.kit.schemas import Schema


class AppUserToken(Schema):
    access_token: str = Field(
        description="A persistent API token of the app user: `Authorization: Token <it>`."
    )
    token_type: Literal["Token"] = "Token"  # noqa: S105 - the scheme name, not a secret
    user_id: uuid.UUID = Field(description="The app user.")
    organization_id: uuid.UUID = Field(description="The organization that installed the app.")
    app_id: uuid.UUID


class OAuthError(BaseModel):
    error: Literal[
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unsupported_grant_type",
        "temporarily_unavailable",
    ]
    error_description: str


class TokenRequest(BaseModel):
    """The form of `POST /identity/token`; each field is checked by the endpoint (RFC 6749 errors)."""

    grant_type: str | None = Field(default=None, description="Must be `authorization_code`.")
    code: str | None = Field(default=None, description="The `app_user_code` of an install trigger's `data`.")
    client_id: str | None = Field(default=None, description="The app id.")
    client_secret: str | None = Field(default=None, description="The app secret.")
