"""Wire shapes of the token endpoint (RFC 6749 sections 5.1 and 5.2)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from apps_api.kit.schemas import Schema, hint, one_of, request_body


class AppUserToken(Schema):
    """An API token of an app user (RFC 6749 section 5.1)."""

    access_token: str = Field(
        description="A persistent API token of the app user: `Authorization: Token <it>`."
    )
    token_type: Literal["Token"] = Field(
        "Token", description="The authorization scheme to send the token with."
    )
    user_id: uuid.UUID = Field(description="The app user.")
    organization_id: uuid.UUID = Field(description="The organization that installed the app.")
    app_id: uuid.UUID = Field(description="The app.")


class OAuthError(BaseModel):
    """An error of `POST /identity/token` (RFC 6749 section 5.2)."""

    error: Literal[
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unsupported_grant_type",
        "temporarily_unavailable",
    ] = Field(description="The RFC 6749 error code.")
    error_description: str = Field(description="What was wrong, for a human.")


class TokenRequest(BaseModel):
    """The form of `POST /identity/token`.

    Every field is required; the endpoint checks each one itself, answering RFC 6749 errors
    (`invalid_request` for a missing one), so the model accepts their absence.
    """

    model_config = request_body(
        required=("grant_type", "code", "client_id", "client_secret"),
        not_null=("grant_type", "code", "client_id", "client_secret"),
        example={
            "grant_type": "authorization_code",
            "code": "a-single-use-app-user-code",
            "client_id": "3c1e5a7b-9d2f-4b6c-8e0a-1f3b5d7c9e2a",
            "client_secret": "the-app-secret",
        },
    )

    grant_type: Annotated[str, one_of(["authorization_code"])] | None = Field(
        default=None, description="Must be `authorization_code`."
    )
    code: str | None = Field(default=None, description="The `app_user_code` of an install trigger's `data`.")
    client_id: Annotated[str, hint(format="uuid")] | None = Field(default=None, description="The app id.")
    client_secret: str | None = Field(default=None, description="The app secret.")
